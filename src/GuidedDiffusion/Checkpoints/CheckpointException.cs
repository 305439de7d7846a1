namespace GuidedDiffusion.Checkpoints;

/// <summary>A checkpoint file that is missing, unreadable, of an unknown format, or not a state dict.</summary>
public class CheckpointException : IOException
{
    /// <summary>Creates the exception for <paramref name="path"/>.</summary>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="message">What went wrong (should name the file); settings it names are marked with <see cref="SettingText.Ref"/>.</param>
    /// <param name="inner">The underlying error, if any.</param>
    public CheckpointException(string path, string message, Exception? inner = null) : base(SettingText.Plain(message), inner)
    {
        FilePath = path;
        this.WithMarkedMessage(message);
    }

    /// <summary>The checkpoint file concerned.</summary>
    public string FilePath { get; }
}

/// <summary>A wrong-shape entry: the key, the shape the model has and the shape the checkpoint has.</summary>
/// <param name="Key">State-dict key.</param>
/// <param name="Expected">Shape in the model.</param>
/// <param name="Actual">Shape in the checkpoint.</param>
public sealed record ShapeMismatch(string Key, long[] Expected, long[] Actual)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Key}: model [{string.Join(", ", Expected)}], checkpoint [{string.Join(", ", Actual)}]";
}

/// <summary>
/// A state dict that does not fit the model. Lists every problem at once — missing keys, unexpected keys and
/// wrong shapes — and nothing was loaded.
/// </summary>
public sealed class StateDictMismatchException : CheckpointException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The checkpoint file (or a description of the source).</param>
    /// <param name="missing">Keys the model has and the checkpoint lacks.</param>
    /// <param name="unexpected">Keys the checkpoint has and the model lacks.</param>
    /// <param name="shapes">Keys present in both with different shapes.</param>
    public StateDictMismatchException(string path, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected,
        IReadOnlyList<ShapeMismatch> shapes)
        : base(path, Describe(path, missing, unexpected, shapes))
    {
        MissingKeys = missing;
        UnexpectedKeys = unexpected;
        ShapeMismatches = shapes;
    }

    /// <summary>Keys the model has and the checkpoint lacks.</summary>
    public IReadOnlyList<string> MissingKeys { get; }

    /// <summary>Keys the checkpoint has and the model lacks.</summary>
    public IReadOnlyList<string> UnexpectedKeys { get; }

    /// <summary>Keys whose shapes differ.</summary>
    public IReadOnlyList<ShapeMismatch> ShapeMismatches { get; }

    private static string Describe(string path, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected,
        IReadOnlyList<ShapeMismatch> shapes)
    {
        // A summary, not every key: a wrong architecture mismatches thousands (the lists stay on the properties).
        var lines = new List<string> { $"The state dict in '{path}' does not fit the model; nothing was loaded." };
        if (missing.Count > 0) lines.Add($"Missing keys ({missing.Count}): {First(missing)}.");
        if (unexpected.Count > 0) lines.Add($"Unexpected keys ({unexpected.Count}): {First(unexpected)}.");
        if (shapes.Count > 0) lines.Add($"Wrong shapes ({shapes.Count}): {First(shapes)}.");
        if (unexpected.Any(k => k.StartsWith("module.", StringComparison.Ordinal)))
            lines.Add("Keys start with 'module.': the file was saved from a DDP wrapper; strip that prefix.");
        if (shapes.Count > 0 || (missing.Count > 0 && unexpected.Count > 0))
            lines.Add("Check that the architecture flags (image_size, classifier_width, classifier_depth, classifier_attention_resolutions, classifier_pool, ...) are those the checkpoint was trained with.");
        return string.Join(" ", lines);
    }

    /// <summary>How many keys of each kind the message names.</summary>
    public const int KeysShown = 3;

    private static string First<T>(IReadOnlyList<T> items) =>
        string.Join("; ", items.Take(KeysShown)) + (items.Count > KeysShown ? $"; and {items.Count - KeysShown} more" : "");
}
