using System.Globalization;

namespace GuidedDiffusion.Training;

/// <summary>
/// The optimiser section of the training settings: AdamW, gradient accumulation, clipping and the weight EMAs.
/// Defaults are classifier_train.py's; <see cref="ImageTrainDefaults"/> has image_train.py's.
/// </summary>
public sealed record OptimizerSettings
{
    /// <summary><c>lr</c>: AdamW learning rate. Default 3e-4 (image_train.py: 1e-4).</summary>
    public double Lr { get; init; } = 3e-4;

    /// <summary><c>weight_decay</c>: AdamW decoupled weight decay. Default 0.</summary>
    public double WeightDecay { get; init; }

    /// <summary>
    /// <c>microbatch</c>: split each batch into chunks of this size and accumulate their gradients; null (−1 on the
    /// command line and in the sidecar, as the original): no split. Default null.
    /// </summary>
    public int? Microbatch { get; init; }

    /// <summary><c>grad_clip</c>: clip the global gradient norm to this value; 0: no clipping. Default 0 (ours).</summary>
    public double GradClip { get; init; }

    /// <summary><c>ema_rate</c>: comma-separated EMA decay rates of the weights (e.g. 0.9999); empty: none. Default empty (image_train.py: 0.9999).</summary>
    public string EmaRate { get; init; } = "";

    /// <summary>image_train.py's optimiser: lr 1e-4 and one EMA at 0.9999.</summary>
    public static OptimizerSettings ImageTrainDefaults { get; } = new() { Lr = 1e-4, EmaRate = "0.9999" };

    /// <summary>EMA rates parsed from <see cref="EmaRate"/> (comma separated, as the original's image trainer).</summary>
    public double[] EmaRates => string.IsNullOrWhiteSpace(EmaRate)
        ? []
        : EmaRate.Split(',').Select(r => double.Parse(r, CultureInfo.InvariantCulture)).ToArray();

    /// <summary>Rejects values that cannot work, naming the setting.</summary>
    /// <exception cref="ConfigurationException">A value out of range.</exception>
    public void Validate()
    {
        if (!(Lr > 0) || double.IsInfinity(Lr)) throw new ConfigurationException("lr", $"must be a positive number, got {Lr}.");
        if (WeightDecay < 0) throw new ConfigurationException("weight_decay", $"must be ≥ 0, got {WeightDecay}.");
        // A microbatch of at least the batch size means no split, as in the original (its range() yields one chunk).
        if (Microbatch < 1) throw new ConfigurationException("microbatch", $"must be -1 (no split) or at least 1, got {Microbatch}.");
        if (GradClip < 0) throw new ConfigurationException("grad_clip", $"must be ≥ 0 (0 disables clipping), got {GradClip}.");
        double[] rates;
        try { rates = EmaRates; }
        catch (FormatException) { throw new ConfigurationException("ema_rate", $"'{EmaRate}' is not a comma-separated list of numbers such as 0.9999."); }
        foreach (var r in rates)
            if (!(r > 0 && r < 1)) throw new ConfigurationException("ema_rate", $"each rate must lie in (0, 1), got {r}.");
    }
}
