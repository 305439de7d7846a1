namespace GuidedDiffusion.Data;

/// <summary>
/// Class names and their label indices. Recorded in checkpoints so that a validation set, an evaluation
/// run or a sampler maps names to the same logits as training did.
/// </summary>
public sealed class ClassMap
{
    private readonly Dictionary<string, int> _index;

    /// <summary>Creates a map whose label i is <paramref name="names"/>[i] (order kept as given).</summary>
    /// <exception cref="ArgumentException">A name occurs twice.</exception>
    public ClassMap(IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        Names = names.ToArray();
        _index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < Names.Count; i++)
        {
            if (!_index.TryAdd(Names[i], i))
                throw new ArgumentException($"Class name '{Names[i]}' occurs twice.", nameof(names));
        }
    }

    /// <summary>
    /// The original's rule: the distinct names sorted by ordinal (code point) order, labelled 0, 1, …
    /// (<c>sorted(set(names))</c>).
    /// </summary>
    public static ClassMap FromSortedDistinct(IEnumerable<string> names) =>
        new(names.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal));

    /// <summary>Class names by label.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>Number of classes.</summary>
    public int Count => Names.Count;

    /// <summary>Label of <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">Unknown name; the message lists the known ones.</exception>
    public int IndexOf(string name) =>
        _index.TryGetValue(name, out int i)
            ? i
            : throw new KeyNotFoundException($"Unknown class '{name}'; known classes: {Describe()}.");

    /// <summary>Looks up <paramref name="name"/> without throwing.</summary>
    public bool TryGetIndex(string name, out int index) => _index.TryGetValue(name, out index);

    /// <summary>The names, quoted and comma-separated (shortened after 20).</summary>
    public string Describe() =>
        string.Join(", ", Names.Take(20).Select(n => $"'{n}'")) + (Count > 20 ? $", … ({Count} in all)" : "");

    /// <inheritdoc/>
    public override string ToString() => $"ClassMap({Count}: {Describe()})";
}
