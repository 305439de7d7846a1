using GuidedDiffusion.Adversarial;

namespace GuidedDiffusion.Evaluation;

/// <summary>
/// Options of <see cref="NoiseLevelEvaluator"/>: which timesteps, how many noise draws, batching and seeding.
/// Defaults live here; the CLI binds to them.
/// </summary>
public sealed record EvaluationOptions
{
    /// <summary>
    /// Number of equal-width timestep bins over [0, T); each level is a bin centre ⌊(i + ½)·T/N⌋. Used when
    /// <see cref="Timesteps"/> is null or empty. Default 10 (t = 50, 150, …, 950 for T = 1000).
    /// </summary>
    public int NumTBins { get; init; } = 10;

    /// <summary>Explicit timesteps (spaced indices in [0, T)); overrides <see cref="NumTBins"/>. Default null.</summary>
    public IReadOnlyList<int>? Timesteps { get; init; }

    /// <summary>Independent noise draws per image and level; every draw counts as one sample. Default 1.</summary>
    public int NoiseRepeats { get; init; } = 1;

    /// <summary>Images per loader batch. Default 64.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>
    /// Images per forward/backward chunk for the guidance-gradient norm (bounds autograd memory). Default 16.
    /// </summary>
    public int GradChunkSize { get; init; } = 16;

    /// <summary>Compute the mean ‖∇ₓ log p(y | x_t)‖₂ (one backward per chunk). Default true.</summary>
    public bool ComputeGradNorm { get; init; } = true;

    /// <summary>
    /// Seed of the noise. The draw for (timestep t, repeat, batch index) depends only on these and the seed, so adding
    /// levels or repeats leaves the others' numbers unchanged; a different <see cref="BatchSize"/> regroups images and so
    /// draws other noise. Default 0.
    /// </summary>
    public int Seed { get; init; }

    /// <summary>
    /// An L2 PGD attack (<c>--attack_eps</c> …) run on every noised image in eval mode: each level then also reports the
    /// robust acc@1 and the mean size of the successful perturbations. The attack needs input gradients, so images go
    /// through in <see cref="GradChunkSize"/> chunks. Default null: no attack.
    /// </summary>
    public L2PgdOptions? Attack { get; init; }

    /// <summary>Image-decoding threads of the loader (0: on the caller's thread). Default: one per processor.</summary>
    public int NumWorkers { get; init; } = Environment.ProcessorCount;

    /// <summary>
    /// A quick end-of-training check: 5 levels (t = T/10, 3T/10, …, 9T/10), one draw, forward passes only (no gradient
    /// norm). Set <see cref="BatchSize"/>, <see cref="NumWorkers"/> and <see cref="Seed"/> from the run.
    /// </summary>
    public static EvaluationOptions QuickTable { get; } = new() { NumTBins = 5, ComputeGradNorm = false };

    /// <summary>Number of equal-width confidence bins of the expected calibration error (fixed at 15, the usual choice).</summary>
    public const int EceBins = 15;

    /// <summary>
    /// The timesteps to evaluate for a process with <paramref name="numTimesteps"/> steps: <see cref="Timesteps"/>
    /// (sorted) when given, else the <see cref="NumTBins"/> bin centres.
    /// </summary>
    /// <exception cref="ConfigurationException">A timestep outside [0, T), a duplicate, or a bin count outside [1, T].</exception>
    public int[] ResolveTimesteps(int numTimesteps)
    {
        if (Timesteps is { Count: > 0 } given)
        {
            foreach (var t in given)
                if (t < 0 || t >= numTimesteps)
                    throw new ConfigurationException("timesteps", $"{t} is outside [0, {numTimesteps}) for this classifier's diffusion ({numTimesteps} steps).");
            var sorted = given.Order().ToArray();
            for (int i = 1; i < sorted.Length; i++)
                if (sorted[i] == sorted[i - 1])
                    throw new ConfigurationException("timesteps", $"{sorted[i]} is listed twice.");
            return sorted;
        }
        if (NumTBins < 1 || NumTBins > numTimesteps)
            throw new ConfigurationException("num_t_bins", $"must lie in [1, {numTimesteps}] (the diffusion's steps), got {NumTBins}.");
        return Enumerable.Range(0, NumTBins).Select(i => (int)((i + 0.5) * numTimesteps / NumTBins)).ToArray();
    }

    /// <summary>Throws <see cref="ConfigurationException"/> naming the flag when an option is out of range.</summary>
    public void Validate()
    {
        if (NoiseRepeats < 1) throw new ConfigurationException("noise_repeats", $"must be at least 1, got {NoiseRepeats}.");
        if (BatchSize < 1) throw new ConfigurationException("batch_size", $"must be at least 1, got {BatchSize}.");
        if (GradChunkSize < 1) throw new ConfigurationException("grad_chunk_size", $"must be at least 1, got {GradChunkSize}.");
        if (NumWorkers < 0) throw new ConfigurationException("num_workers", $"must be 0 or more, got {NumWorkers}.");
        Attack?.Validate();
    }

    /// <summary>Parses a comma-separated timestep list such as "0,100,500" (empty: none).</summary>
    /// <exception cref="ConfigurationException">An entry is not an integer.</exception>
    public static int[] ParseTimesteps(string text)
    {
        if (string.IsNullOrWhiteSpace(text)) return [];
        return text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(s => int.TryParse(s, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var t)
                ? t
                : throw new ConfigurationException("timesteps", $"'{s}' is not an integer timestep (expected e.g. 0,100,500)."))
            .ToArray();
    }
}
