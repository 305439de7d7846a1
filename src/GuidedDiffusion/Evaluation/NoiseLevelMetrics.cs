using GuidedDiffusion.Adversarial;

namespace GuidedDiffusion.Evaluation;

/// <summary>A classifier's metrics on the whole evaluation set noised to one timestep.</summary>
/// <param name="Timestep">The spaced timestep t given to q_sample and to the classifier.</param>
/// <param name="Samples">Evaluated samples: images × noise repeats.</param>
/// <param name="Loss">Mean cross-entropy (nats).</param>
/// <param name="Acc1">Top-1 accuracy.</param>
/// <param name="Acc5">Top-5 accuracy; null when the classifier has fewer than 5 classes.</param>
/// <param name="Ece">Expected calibration error over <see cref="EvaluationOptions.EceBins"/> equal-width confidence bins.</param>
/// <param name="GradNorm">Mean over samples of ‖∇ₓ log p(y | x_t)‖₂ for the true label y (the guidance signal);
/// null when not computed.</param>
/// <param name="PerClassAccuracy">Top-1 accuracy by label; null for a class without samples.</param>
public sealed record NoiseLevelMetrics(
    int Timestep,
    long Samples,
    double Loss,
    double Acc1,
    double? Acc5,
    double Ece,
    double? GradNorm,
    IReadOnlyList<double?> PerClassAccuracy)
{
    /// <summary>Top-1 accuracy under <see cref="EvaluationReport.Attack"/>; null without an attack.</summary>
    public double? RobustAcc1 { get; init; }

    /// <summary>
    /// Mean ‖δ‖₂ of the perturbations that turned a correct prediction wrong; null without an attack or when none did.
    /// </summary>
    public double? AttackL2 { get; init; }
}

/// <summary>The result of <see cref="NoiseLevelEvaluator"/>: one <see cref="NoiseLevelMetrics"/> per timestep.</summary>
public sealed record EvaluationReport
{
    /// <summary>Format tag of eval.json.</summary>
    public string Format { get; init; } = "guided-diffusion-net/eval/1";

    /// <summary>The checkpoint evaluated, when known.</summary>
    public string? ModelPath { get; init; }

    /// <summary>What was evaluated on (a folder, or the demo's validation split).</summary>
    public string Data { get; init; } = "";

    /// <summary>Images in the evaluation set.</summary>
    public int Images { get; init; }

    /// <summary>Steps T of the (spaced) diffusion the timesteps index.</summary>
    public int NumTimesteps { get; init; }

    /// <summary>Noise draws per image and level.</summary>
    public int NoiseRepeats { get; init; }

    /// <summary>The noise seed.</summary>
    public long Seed { get; init; }

    /// <summary>Class names by label.</summary>
    public IReadOnlyList<string> Classes { get; init; } = [];

    /// <summary>The attack behind <see cref="NoiseLevelMetrics.RobustAcc1"/>; null when none was run.</summary>
    public L2PgdOptions? Attack { get; init; }

    /// <summary>The levels, by increasing timestep.</summary>
    public IReadOnlyList<NoiseLevelMetrics> Levels { get; init; } = [];

    /// <summary>The short text table (t, loss, acc@1, acc@5, ECE, grad norm); see <see cref="EvaluationTable"/>.</summary>
    public string FormatTable() => EvaluationTable.Format(this);
}
