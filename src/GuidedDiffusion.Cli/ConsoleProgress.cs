using System.Diagnostics;

namespace GuidedDiffusion.Cli;

/// <summary>
/// A one-line progress bar (step, it/s, ETA, loss) on an interactive terminal. The run's tables are printed
/// through <see cref="Writer"/>, which clears the bar first, so the two never interleave. Silent when
/// stdout is redirected (logs stay clean).
/// </summary>
internal sealed class ConsoleProgress : IDisposable
{
    private readonly bool _interactive;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _firstStep = -1;
    private string _line = "";

    public ConsoleProgress(bool enabled = true)
    {
        _interactive = enabled && CliConsole.OutIsTerminal;
        Writer = new BarAwareWriter(this);
    }

    /// <summary>Console writer that keeps the bar below the text.</summary>
    public TextWriter Writer { get; }

    public void Report(long done, long total, double loss)
    {
        if (!_interactive) return;
        if (_firstStep < 0) { _firstStep = done - 1; _clock.Restart(); }
        double rate = (done - _firstStep) / Math.Max(_clock.Elapsed.TotalSeconds, 1e-9);
        var eta = rate > 0 ? TimeSpan.FromSeconds((total - done) / rate) : TimeSpan.Zero;
        int width = 30, filled = (int)(width * done / Math.Max(total, 1));
        _line = $"[{new string('#', filled)}{new string('.', width - filled)}] {done}/{total}  {rate:0.00} it/s  ETA {eta:hh\\:mm\\:ss}  loss {loss:0.0000}";
        CliConsole.Out.Write("\r" + _line);
    }

    public void Finish()
    {
        if (_interactive && _line.Length > 0) CliConsole.Out.WriteLine();
        _line = "";
    }

    public void Dispose() => Finish();

    private sealed class BarAwareWriter(ConsoleProgress owner) : TextWriter
    {
        public override System.Text.Encoding Encoding => CliConsole.Out.Encoding;

        public override void Write(char value) => CliConsole.Out.Write(value);

        public override void Write(string? value)
        {
            Clear();
            CliConsole.Out.Write(value);
        }

        public override void WriteLine(string? value)
        {
            Clear();
            CliConsole.Out.WriteLine(value);
        }

        private void Clear()
        {
            if (owner._interactive && owner._line.Length > 0)
            {
                CliConsole.Out.Write("\r" + new string(' ', owner._line.Length) + "\r");
                owner._line = "";
            }
        }
    }
}
