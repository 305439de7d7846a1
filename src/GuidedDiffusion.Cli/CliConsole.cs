namespace GuidedDiffusion.Cli;

/// <summary>
/// Where a command's output and error lines go: the console, unless this flow redirected them. Per flow
/// (<see cref="AsyncLocal{T}"/>), so tests can run commands in-process, several at once, and read what each printed.
/// </summary>
internal static class CliConsole
{
    private static readonly AsyncLocal<TextWriter?> OutWriter = new();
    private static readonly AsyncLocal<TextWriter?> ErrorWriter = new();

    /// <summary>stdout, unless this flow redirected it (null restores stdout).</summary>
    public static TextWriter Out
    {
        get => OutWriter.Value ?? Console.Out;
        set => OutWriter.Value = value;
    }

    /// <summary>stderr, unless this flow redirected it (null restores stderr).</summary>
    public static TextWriter Error
    {
        get => ErrorWriter.Value ?? Console.Error;
        set => ErrorWriter.Value = value;
    }

    /// <summary>Whether <see cref="Out"/> is a terminal that a progress bar may redraw.</summary>
    public static bool OutIsTerminal => OutWriter.Value is null && !Console.IsOutputRedirected;

    /// <summary>Whether <see cref="Error"/> is a terminal that a progress line may redraw.</summary>
    public static bool ErrorIsTerminal => ErrorWriter.Value is null && !Console.IsErrorRedirected;
}
