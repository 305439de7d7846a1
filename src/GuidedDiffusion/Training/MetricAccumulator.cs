namespace GuidedDiffusion.Training;

/// <summary>
/// The original logger's key/value store between dumps: <see cref="Set"/> keeps the last value
/// (logkv), <see cref="AddToMean"/> keeps a running mean of every value given (logkv_mean).
/// </summary>
public sealed class MetricAccumulator
{
    private readonly Dictionary<string, (double Sum, long Count, bool IsMean)> _values = new(StringComparer.Ordinal);

    /// <summary>Records <paramref name="value"/> as the value of <paramref name="key"/> (last one wins).</summary>
    public void Set(string key, double value) => _values[key] = (value, 1, false);

    /// <summary>Adds <paramref name="value"/> to the running mean of <paramref name="key"/>.</summary>
    public void AddToMean(string key, double value)
    {
        var (sum, count, _) = _values.TryGetValue(key, out var v) ? v : (0.0, 0L, true);
        _values[key] = (sum + value, count + 1, true);
    }

    /// <summary>Keys recorded since the last <see cref="Clear"/>.</summary>
    public IEnumerable<string> Keys => _values.Keys;

    /// <summary>The per-key sum and count (count 0 where absent), in <paramref name="keys"/> order, for averaging across ranks.</summary>
    public (double[] Sums, double[] Counts) SumsAndCounts(IReadOnlyList<string> keys)
    {
        var sums = new double[keys.Count];
        var counts = new double[keys.Count];
        for (int i = 0; i < keys.Count; i++)
            if (_values.TryGetValue(keys[i], out var v)) { sums[i] = v.Sum; counts[i] = v.Count; }
        return (sums, counts);
    }

    /// <summary>Current value of every key: the mean for averaged keys, the last value otherwise.</summary>
    public Dictionary<string, double> Snapshot() =>
        _values.ToDictionary(kv => kv.Key, kv => kv.Value.Sum / kv.Value.Count, StringComparer.Ordinal);

    /// <summary>Forgets everything (after a dump).</summary>
    public void Clear() => _values.Clear();
}
