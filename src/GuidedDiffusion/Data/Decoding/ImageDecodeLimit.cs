namespace GuidedDiffusion.Data.Decoding;

/// <summary>PIL's decompression-bomb limit for one run (<see cref="RunContext.MaxImagePixels"/>) and where its warning goes.</summary>
/// <param name="MaxPixels">Warn above this many pixels, refuse an image above twice as many.</param>
/// <param name="Warn">Receives the above-limit warning (null: it is dropped); called from the loader's worker threads.</param>
public sealed record ImageDecodeLimit(long MaxPixels, Action<string>? Warn)
{
    /// <summary>The limit of <paramref name="run"/>, warning through it.</summary>
    public static ImageDecodeLimit Of(RunContext run)
    {
        ArgumentNullException.ThrowIfNull(run);
        return new(run.MaxImagePixels, run.Warn);
    }

    /// <summary>PIL's default limit, warning on stderr as PIL's DecompressionBombWarning does: for callers that give no run.</summary>
    public static ImageDecodeLimit Default { get; } = new(RunContext.DefaultMaxImagePixels, line => Console.Error.WriteLine(line));
}
