using System.Text.Json.Serialization;

namespace GuidedDiffusion.Diffusion;

/// <summary>Which <see cref="TimestepSampler"/> draws the training t (<c>schedule_sampler</c>), spelled as the original's.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TimestepSamplerKind>))]
public enum TimestepSamplerKind
{
    /// <summary>Every step equally likely.</summary>
    [JsonStringEnumMemberName("uniform")]
    Uniform,

    /// <summary>Steps weighted by the root mean square of their recent losses (the original's importance sampler).</summary>
    [JsonStringEnumMemberName("loss-second-moment")]
    LossSecondMoment,
}

/// <summary>The spellings of <see cref="TimestepSamplerKind"/> (<c>schedule_sampler</c>).</summary>
public static class TimestepSamplerKinds
{
    /// <summary>The sampler names <c>schedule_sampler</c> accepts.</summary>
    public static IReadOnlyList<string> Names => Spellings.Of<TimestepSamplerKind>();

    /// <summary>The sampler spelled <paramref name="name"/>.</summary>
    /// <exception cref="ConfigurationException">An unknown name (the error names <c>schedule_sampler</c>).</exception>
    public static TimestepSamplerKind Parse(string name) => Spellings.Parse<TimestepSamplerKind>(name, "schedule_sampler", "sampler");
}

/// <summary>
/// Draws training timesteps from a distribution over the diffusion's steps, with importance weights that
/// keep the loss unbiased (the original's <c>ScheduleSampler</c>). Deterministic for a given seed.
/// </summary>
public abstract class TimestepSampler
{
    /// <summary>Creates a sampler over <paramref name="numTimesteps"/> steps.</summary>
    protected TimestepSampler(int numTimesteps) => NumTimesteps = numTimesteps;

    /// <summary>Number of steps t ranges over.</summary>
    public int NumTimesteps { get; }

    /// <summary>Whether the trainer should feed per-sample losses back through <see cref="UpdateWithLosses"/>.</summary>
    public virtual bool UsesLosses => false;

    /// <summary>Unnormalised sampling weight of every step.</summary>
    public abstract double[] Weights();

    /// <summary>Records per-sample losses observed at steps <paramref name="t"/> (no-op for fixed samplers).</summary>
    public virtual void UpdateWithLosses(IReadOnlyList<long> t, IReadOnlyList<double> losses) { }

    /// <summary>
    /// Draws <paramref name="batchSize"/> steps with probability p = w / Σw and returns them with the
    /// importance weights 1 / (T·p_t) as float32, as the original does. The draws come from
    /// <paramref name="random"/>, so a seeded stream makes them reproducible (the trainer seeds one per step).
    /// </summary>
    public (long[] Timesteps, float[] ImportanceWeights) Sample(int batchSize, Random random)
    {
        var w = Weights();
        double total = w.Sum();
        var cdf = new double[w.Length];
        double run = 0;
        for (int i = 0; i < w.Length; i++) { run += w[i] / total; cdf[i] = run; }
        var t = new long[batchSize];
        var weights = new float[batchSize];
        for (int b = 0; b < batchSize; b++)
        {
            double u = random.NextDouble() * run;
            int idx = Array.BinarySearch(cdf, u);
            if (idx < 0) idx = ~idx;
            idx = Math.Min(idx, w.Length - 1);
            t[b] = idx;
            weights[b] = (float)(1.0 / (w.Length * (w[idx] / total)));
        }
        return (t, weights);
    }

    /// <summary>Creates the sampler named by <c>--schedule_sampler</c>.</summary>
    public static TimestepSampler Create(TimestepSamplerKind kind, int numTimesteps) => kind switch
    {
        TimestepSamplerKind.Uniform => new UniformSampler(numTimesteps),
        TimestepSamplerKind.LossSecondMoment => new LossSecondMomentResampler(numTimesteps),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };
}

/// <summary>Every step equally likely.</summary>
public sealed class UniformSampler : TimestepSampler
{
    /// <summary>Creates a uniform sampler over <paramref name="numTimesteps"/> steps.</summary>
    public UniformSampler(int numTimesteps) : base(numTimesteps) { }

    /// <inheritdoc />
    public override double[] Weights() => Enumerable.Repeat(1.0, NumTimesteps).ToArray();
}

/// <summary>
/// Importance sampling by the root mean square of the last <see cref="HistoryPerTerm"/> losses at each
/// step, mixed with <see cref="UniformProbability"/> of uniform mass; uniform until every step has a full
/// history. Unlike the original's trainer, ours feeds the losses back, so the option does what it says.
/// </summary>
public sealed class LossSecondMomentResampler : TimestepSampler
{
    /// <summary>Losses kept per step (the original's history_per_term).</summary>
    public const int HistoryPerTerm = 10;

    /// <summary>Uniform mass mixed into the weights (the original's uniform_prob).</summary>
    public const double UniformProbability = 0.001;

    private readonly double[,] _history;
    private readonly int[] _counts;

    /// <summary>Creates the resampler over <paramref name="numTimesteps"/> steps.</summary>
    public LossSecondMomentResampler(int numTimesteps) : base(numTimesteps)
    {
        _history = new double[numTimesteps, HistoryPerTerm];
        _counts = new int[numTimesteps];
    }

    /// <inheritdoc />
    public override bool UsesLosses => true;

    /// <summary>True once every step has <see cref="HistoryPerTerm"/> recorded losses.</summary>
    public bool WarmedUp => _counts.All(c => c == HistoryPerTerm);

    /// <summary>Number of losses recorded per step (at most <see cref="HistoryPerTerm"/>).</summary>
    public IReadOnlyList<int> LossCounts => _counts;

    /// <summary>The recorded loss history, [T, HistoryPerTerm].</summary>
    public double[,] LossHistory => (double[,])_history.Clone();

    /// <inheritdoc />
    public override double[] Weights()
    {
        int n = NumTimesteps;
        if (!WarmedUp) return Enumerable.Repeat(1.0, n).ToArray();
        var w = new double[n];
        for (int t = 0; t < n; t++)
        {
            double sq = 0;
            for (int h = 0; h < HistoryPerTerm; h++) sq += _history[t, h] * _history[t, h];
            w[t] = Math.Sqrt(sq / HistoryPerTerm);
        }
        double sum = w.Sum();
        for (int t = 0; t < n; t++) w[t] = w[t] / sum * (1 - UniformProbability) + UniformProbability / n;
        return w;
    }

    /// <inheritdoc />
    public override void UpdateWithLosses(IReadOnlyList<long> t, IReadOnlyList<double> losses)
    {
        if (t.Count != losses.Count) throw new ArgumentException("timesteps and losses differ in length.");
        for (int i = 0; i < t.Count; i++)
        {
            int step = checked((int)t[i]);
            if (_counts[step] == HistoryPerTerm)
            {
                // A full history shifts left; the newest loss goes last.
                for (int h = 0; h < HistoryPerTerm - 1; h++) _history[step, h] = _history[step, h + 1];
                _history[step, HistoryPerTerm - 1] = losses[i];
            }
            else
            {
                _history[step, _counts[step]] = losses[i];
                _counts[step]++;
            }
        }
    }

    /// <summary>Restores the history (e.g. on resume); shapes must match.</summary>
    public void Restore(double[,] history, int[] counts)
    {
        if (history.GetLength(0) != NumTimesteps || history.GetLength(1) != HistoryPerTerm || counts.Length != NumTimesteps)
            throw new ArgumentException($"sampler state does not fit {NumTimesteps} steps.");
        Array.Copy(history, _history, history.Length);
        Array.Copy(counts, _counts, counts.Length);
    }
}
