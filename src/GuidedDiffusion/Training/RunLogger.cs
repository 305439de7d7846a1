using System.Globalization;
using System.Text;
using TorchSharp.Modules;

namespace GuidedDiffusion.Training;

/// <summary>
/// Writes a run's logs like the original's logger: a key/value table on the console and in log.txt, and a
/// row per dump in progress.csv, plus TensorBoard event files. Our CSV has a fixed column order (every key
/// the run can log, sorted) and a resumed run appends instead of truncating the earlier logs.
/// </summary>
public sealed class RunLogger : IDisposable
{
    private readonly RunContext _run;
    private readonly StreamWriter _logTxt;
    private readonly StreamWriter _csv;
    private readonly IReadOnlyList<string> _columns;
    private readonly SummaryWriter? _tensorBoard;
    private readonly HashSet<string> _skipped = new(StringComparer.Ordinal);

    /// <summary>The list of skipped images in the run folder: one "path&lt;TAB&gt;reason" line per file.</summary>
    public const string SkippedImagesFile = "skipped_images.txt";

    /// <summary>Opens (appending when <paramref name="append"/>) the logs in <paramref name="directory"/>.</summary>
    /// <param name="directory">The run folder; created if missing.</param>
    /// <param name="columns">The progress.csv columns, in order.</param>
    /// <param name="append">Keep earlier log.txt / progress.csv content (resume into the same folder).</param>
    /// <param name="run">Where the tables (<see cref="RunContext.Output"/>) and warnings go besides log.txt, and how settings are spelled in them.</param>
    /// <param name="tensorBoard">Also write TensorBoard event files under <c>tb/</c>.</param>
    public RunLogger(string directory, IReadOnlyList<string> columns, bool append, RunContext run, bool tensorBoard = true)
    {
        ArgumentNullException.ThrowIfNull(run);
        _run = run;
        System.IO.Directory.CreateDirectory(directory);
        Directory = directory;
        _columns = columns;
        _logTxt = new StreamWriter(Path.Combine(directory, "log.txt"), append, new UTF8Encoding(false)) { AutoFlush = true };
        var csvPath = Path.Combine(directory, "progress.csv");
        bool writeHeader = !append || !File.Exists(csvPath) || new FileInfo(csvPath).Length == 0;
        if (!writeHeader && File.ReadLines(csvPath).First() != string.Join(",", columns))
        {
            // A resumed run with other columns (e.g. validation switched on) starts a new file rather than
            // writing rows that do not match the header.
            File.Move(csvPath, NextFreeName(csvPath));
            writeHeader = true;
        }
        _csv = new StreamWriter(csvPath, !writeHeader, new UTF8Encoding(false)) { AutoFlush = true };
        if (writeHeader) _csv.WriteLine(string.Join(",", columns));
        if (tensorBoard)
            _tensorBoard = TorchSharp.torch.utils.tensorboard.SummaryWriter(Path.Combine(directory, "tb"));
    }

    /// <summary>The run folder.</summary>
    public string Directory { get; }

    /// <summary>Writes a plain line to the console and log.txt (settings marked with <see cref="SettingText.Ref"/> spelled by <see cref="RunContext.Show"/>).</summary>
    public void Log(string line)
    {
        line = _run.Show(line);
        _run.Output.WriteLine(line);
        _logTxt.WriteLine(line);
    }

    /// <summary>Writes a warning line to stderr and log.txt (settings spelled as in <see cref="Log"/>).</summary>
    public void Warn(string line)
    {
        line = _run.Show(line);
        _run.Warnings.WriteLine(line);
        _logTxt.WriteLine(line);
    }

    /// <summary>
    /// Names each skipped image once over the run (a resumed run included): a warning with the decoder's reason
    /// on stderr and in log.txt, and a line in <see cref="SkippedImagesFile"/>.
    /// </summary>
    public void ReportSkipped(IEnumerable<Data.Loading.BadImage> images)
    {
        var path = Path.Combine(Directory, SkippedImagesFile);
        if (_skipped.Count == 0 && File.Exists(path))
            foreach (var line in File.ReadLines(path)) _skipped.Add(line.Split('\t')[0]);
        foreach (var image in images)
        {
            if (!_skipped.Add(image.Name)) continue;
            Warn($"skipped unreadable image '{image.Name}': {image.Reason}");
            File.AppendAllText(path, $"{image.Name}\t{image.Reason.ReplaceLineEndings(" ")}\n");
        }
    }

    /// <summary>
    /// Reports what opening the data left out (<c>--skip_bad_images</c>): each skipped file as
    /// <see cref="ReportSkipped"/> does, then each source's warnings (a class with no readable image).
    /// </summary>
    public void ReportOpened(params Data.Sources.IImageSource?[] sources)
    {
        foreach (var source in sources.OfType<Data.Sources.IImageSource>())
        {
            ReportSkipped(source.Skipped.Select(e => new Data.Loading.BadImage(e.Path, e.Reason)));
            foreach (var warning in source.Warnings) Warn(warning);
        }
    }

    /// <summary>Writes one dump: the table, a CSV row, and TensorBoard scalars at <paramref name="step"/>.</summary>
    public void Dump(IReadOnlyDictionary<string, double> values, long step)
    {
        if (values.Count == 0) return;
        var table = FormatTable(values);
        _run.Output.Write(table);
        _logTxt.Write(table);
        _csv.WriteLine(string.Join(",", _columns.Select(c => values.TryGetValue(c, out var v) ? FormatCsv(v) : "")));
        if (_tensorBoard is not null)
            foreach (var (key, value) in values)
                if (key is not "step" and not "samples") _tensorBoard.add_scalar(key, (float)value, checked((int)step));
    }

    /// <summary>The original's human-readable table: keys and "%-8.3g" values between dashes.</summary>
    public static string FormatTable(IReadOnlyDictionary<string, double> values)
    {
        var rows = values.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (Key: Truncate(kv.Key), Value: Truncate(FormatG3(kv.Value).PadRight(8)))).ToList();
        int keyWidth = rows.Max(r => r.Key.Length), valueWidth = rows.Max(r => r.Value.Length);
        var dashes = new string('-', keyWidth + valueWidth + 7);
        var sb = new StringBuilder().Append(dashes).Append('\n');
        foreach (var (key, value) in rows)
            sb.Append("| ").Append(key.PadRight(keyWidth)).Append(" | ").Append(value.PadRight(valueWidth)).Append(" |\n");
        return sb.Append(dashes).Append('\n').ToString();
    }

    /// <summary>Python's "%.3g": three significant digits, lower-case two-digit exponent.</summary>
    public static string FormatG3(double value)
    {
        if (double.IsNaN(value)) return "nan";
        if (double.IsInfinity(value)) return value > 0 ? "inf" : "-inf";
        var s = value.ToString("G3", CultureInfo.InvariantCulture);
        int e = s.IndexOf('E');
        if (e < 0) return s;
        var exponent = int.Parse(s.AsSpan(e + 1), CultureInfo.InvariantCulture);
        return s[..e] + "e" + (exponent < 0 ? "-" : "+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
    }

    private static string FormatCsv(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static string Truncate(string s) => s.Length > 30 ? s[..27] + "..." : s;

    private static string NextFreeName(string path)
    {
        for (int i = 1; ; i++)
        {
            var candidate = Path.ChangeExtension(path, $".{i}.csv");
            if (!File.Exists(candidate)) return candidate;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _logTxt.Dispose();
        _csv.Dispose();
    }
}
