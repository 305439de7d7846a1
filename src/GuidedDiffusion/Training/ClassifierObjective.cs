using GuidedDiffusion.Adversarial;

namespace GuidedDiffusion.Training;

/// <summary>What a classifier learns from: noised or clean images, plain or attacked. image-train has no such choice.</summary>
public sealed record ClassifierObjective
{
    /// <summary><c>noised</c>: train on x_t with sampled t (true) or on clean images at t = 0. Default true (classifier_train.py).</summary>
    public bool Noised { get; init; } = true;

    /// <summary>
    /// <c>adversarial True</c> with its <c>attack_*</c> settings: train on untargeted L2 PGD attacks of x_t
    /// (Kawar, Ganz and Elad's robust noisy classifiers). Null (default): plain training.
    /// </summary>
    public L2PgdOptions? Adversarial { get; init; }
}
