using static TorchSharp.torch;

namespace GuidedDiffusion;

/// <summary>
/// How a job runs, as opposed to what it computes (its options record): where its lines and warnings go, the
/// device, how settings are spelled in those lines, and PIL's decompression-bomb limit. The caller makes one per run
/// and hands it to the job, so two runs in one process (tests, a C# host) never share mutable state.
/// </summary>
public sealed record RunContext
{
    /// <summary>PIL's <c>Image.MAX_IMAGE_PIXELS</c> default (1024 · 1024 · 1024 / 4 / 3).</summary>
    public const long DefaultMaxImagePixels = 89_478_485;

    /// <summary>Progress and log lines (the original's prints). Default: nowhere.</summary>
    public TextWriter Output { get; init; } = TextWriter.Null;

    /// <summary>Warning lines. Default: nowhere.</summary>
    public TextWriter Warnings { get; init; } = TextWriter.Null;

    /// <summary>Where models run and tensors are made (see <see cref="ComputeDevice.Parse"/>). Default: the CPU.</summary>
    public Device Device { get; init; } = CPU;

    /// <summary>
    /// How a setting marked in a line (<see cref="SettingText.Ref"/>) is spelled: bare names by default; the CLI
    /// passes the running command's flag spelling (<c>--data_dir</c>).
    /// </summary>
    public Func<string, string> Spelling { get; init; } = name => name;

    /// <summary>
    /// The decompression-bomb limit, as PIL's <c>Image.MAX_IMAGE_PIXELS</c>: an image whose header claims more pixels
    /// is decoded with a warning, one claiming more than twice as many is refused before any pixel memory is allocated.
    /// Default <see cref="DefaultMaxImagePixels"/>.
    /// </summary>
    public long MaxImagePixels { get; init; } = DefaultMaxImagePixels;

    /// <summary><paramref name="line"/> with its marked settings spelled by <see cref="Spelling"/>.</summary>
    public string Show(string line) => SettingText.Render(line, Spelling);

    /// <summary>Writes <paramref name="line"/> (settings spelled) to <see cref="Output"/>.</summary>
    public void Log(string line) => Output.WriteLine(Show(line));

    /// <summary>Writes <paramref name="line"/> (settings spelled) to <see cref="Warnings"/>; safe from the loader's worker threads.</summary>
    public void Warn(string line)
    {
        var shown = Show(line);
        // The writer is the lock: contexts made with `with` share it, and so must their lines.
        lock (Warnings) Warnings.WriteLine(shown);
    }

    /// <summary>Throws <see cref="ConfigurationException"/> naming the setting when a value is out of range.</summary>
    public void Validate()
    {
        if (MaxImagePixels <= 0)
            throw new ConfigurationException("max_image_pixels", $"must be a positive pixel count, got {MaxImagePixels}.");
    }
}
