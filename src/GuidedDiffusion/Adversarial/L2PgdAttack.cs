using GuidedDiffusion.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Adversarial;

/// <summary>What <see cref="L2PgdAttack.Run"/> produced for a batch.</summary>
/// <param name="Adversarial">x_t + δ with ‖δ‖₂ ≤ radius per sample; detached, float32.</param>
/// <param name="InitiallyCorrect">[B] bool: the model classified the clean x_t correctly; null with 0 steps (no forward pass made).</param>
/// <param name="PerturbationNorm">[B] float32: ‖δ‖₂ per sample.</param>
/// <param name="StepsTaken">Steps made before every sample was misclassified or the budget was spent.</param>
public sealed record AttackResult(Tensor Adversarial, Tensor? InitiallyCorrect, Tensor PerturbationNorm, int StepsTaken)
{
    /// <summary>
    /// [B] bool: samples the attack turned from correct to wrong, given <paramref name="finalCorrect"/> (the caller's
    /// classification of <see cref="Adversarial"/>). Samples misclassified from the start are not successes: their δ is 0.
    /// </summary>
    public Tensor Succeeded(Tensor finalCorrect) =>
        InitiallyCorrect is null ? zeros_like(finalCorrect, dtype: ScalarType.Bool) : InitiallyCorrect.logical_and(finalCorrect.logical_not());
}

/// <summary>
/// Untargeted L2 projected gradient descent on x_t against a noise-aware classifier at the same t, as in Kawar, Ganz
/// and Elad's classifier_rob_train.py: from the clean x_t (no random start), each step moves along the per-sample
/// L2-normalised gradient of the cross-entropy and projects back onto the ball of radius eps around the clean x_t; a
/// sample that is misclassified stops being attacked, and the loop ends early when all are. The model is used in
/// whatever train/eval mode it is in, and only gradients with respect to the input are computed (autograd.grad), so
/// the parameters' .grad buffers are untouched.
/// </summary>
public sealed class L2PgdAttack
{
    private readonly nn.Module<Tensor, Tensor, Tensor> _model;
    private readonly double[] _sqrtAlphasCumprod;

    /// <summary>An attack on <paramref name="model"/> (forward(x, t) → logits).</summary>
    /// <param name="model">The classifier under attack.</param>
    /// <param name="options">Radius, steps, step size and schedule (validated here).</param>
    /// <param name="diffusion">The (spaced) process whose t the classifier sees; supplies sqrt(ᾱ_t) for the sqrt_alpha schedule.</param>
    public L2PgdAttack(nn.Module<Tensor, Tensor, Tensor> model, L2PgdOptions options, GaussianDiffusion diffusion)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _model = model;
        Options = options;
        _sqrtAlphasCumprod = diffusion.SqrtAlphasCumprod;
    }

    /// <summary>The settings.</summary>
    public L2PgdOptions Options { get; }

    /// <summary>[B] float32 radius per sample at timesteps <paramref name="t"/>.</summary>
    public Tensor Radius(Tensor t) => PerSample(Options.Eps, t);

    /// <summary>[B] float32 step length per sample at timesteps <paramref name="t"/>.</summary>
    public Tensor StepSizes(Tensor t) => PerSample(Options.ResolvedStepSize(), t);

    /// <summary>Attacks <paramref name="x"/> [B, ...] with true <paramref name="labels"/> [B] at timesteps <paramref name="t"/> [B].</summary>
    /// <param name="x">The clean x_t (any float dtype; not modified).</param>
    /// <param name="labels">True classes.</param>
    /// <param name="t">Timesteps given to the classifier.</param>
    /// <param name="lossScale">Multiplies the loss before the input gradient: fp16's loss scale keeps small gradients from
    /// underflowing in a half-precision trunk. The direction is normalised, so the scale does not change the step.</param>
    public AttackResult Run(Tensor x, Tensor labels, Tensor t, double lossScale = 1.0)
    {
        using var scope = NewDisposeScope();
        var origin = x.detach().to_type(ScalarType.Float32);
        var y = labels.to_type(ScalarType.Int64);
        var radius = Radius(t);
        var stepSize = StepSizes(t);
        var current = origin;
        Tensor? initiallyCorrect = null, active = null;
        int taken = 0;
        for (int i = 0; i < Options.Steps; i++)
        {
            var (gradient, correct) = GradientAndCorrect(current, y, t, lossScale);
            initiallyCorrect ??= correct;
            // Once misclassified, a sample keeps its perturbation (the reference's rule; sticky here so dropout noise
            // in train mode cannot restart it).
            active = active is null ? correct : active.logical_and(correct);
            if (!active.any().item<bool>()) break;
            var moved = Project(Step(current, gradient, stepSize), origin, radius);
            current = where(PerSampleShape(active, current), moved, current);
            taken++;
        }
        var norms = PerturbationNorms(current, origin);
        return new AttackResult(current.detach().MoveToOuterDisposeScope(), initiallyCorrect?.MoveToOuterDisposeScope(),
            norms.MoveToOuterDisposeScope(), taken);
    }

    /// <summary>
    /// One ascent step: <paramref name="x"/> + size·g/‖g‖₂ per sample (‖g‖ over all of a sample's elements; +1e-10
    /// as the reference). A sample whose gradient is not finite (fp16 overflow) does not move.
    /// </summary>
    /// <param name="x">The current inputs [B, ...].</param>
    /// <param name="gradient">The loss gradient with respect to <paramref name="x"/>.</param>
    /// <param name="stepSize">[B] step lengths.</param>
    public static Tensor Step(Tensor x, Tensor gradient, Tensor stepSize)
    {
        using var scope = NewDisposeScope();
        var g = gradient.to_type(ScalarType.Float32);
        var norm = PerSampleShape(g.flatten(1).norm(1), g);
        var direction = where(norm.isfinite(), g / (norm + 1e-10), zeros_like(g));
        return (x + PerSampleShape(stepSize, x) * direction).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Projects <paramref name="x"/> onto the L2 balls of radius <paramref name="radius"/> [B] around
    /// <paramref name="origin"/>: δ·r/max(‖δ‖, r), so a point inside stays where it is.
    /// </summary>
    public static Tensor Project(Tensor x, Tensor origin, Tensor radius)
    {
        using var scope = NewDisposeScope();
        var delta = x - origin;
        var norm = PerSampleShape(delta.flatten(1).norm(1), delta);
        var r = PerSampleShape(radius, delta);
        return (origin + delta * (r / norm.maximum(r).clamp_min(1e-12))).MoveToOuterDisposeScope();
    }

    /// <summary>[B] float32 ‖<paramref name="adversarial"/> − <paramref name="clean"/>‖₂ per sample.</summary>
    public static Tensor PerturbationNorms(Tensor adversarial, Tensor clean)
    {
        using var scope = NewDisposeScope();
        return (adversarial.to_type(ScalarType.Float32) - clean.to_type(ScalarType.Float32)).flatten(1).norm(1).MoveToOuterDisposeScope();
    }

    private (Tensor Gradient, Tensor Correct) GradientAndCorrect(Tensor x, Tensor y, Tensor t, double lossScale)
    {
        using var scope = NewDisposeScope();
        // The validation pass runs under no_grad; the attack needs the input gradient regardless.
        using var enable = enable_grad();
        var input = x.detach().requires_grad_(true);
        var logits = _model.forward(input, t).to_type(ScalarType.Float32);
        var correct = logits.detach().argmax(-1).eq(y);
        // The batch mean, as the reference; per-sample normalisation makes each sample's step independent of the others.
        var loss = nn.functional.cross_entropy(logits, y) * lossScale;
        var gradient = autograd.grad([loss], [input])[0];
        return (gradient.detach().MoveToOuterDisposeScope(), correct.MoveToOuterDisposeScope());
    }

    private Tensor PerSample(double value, Tensor t)
    {
        var steps = t.cpu().data<long>().ToArray();
        var values = steps.Select(s => (float)(Options.EpsSchedule == AttackEpsSchedule.SqrtAlpha ? value * _sqrtAlphasCumprod[s] : value)).ToArray();
        return tensor(values, device: t.device);
    }

    /// <summary>A [B] tensor viewed as [B, 1, …, 1] to broadcast against <paramref name="like"/>.</summary>
    private static Tensor PerSampleShape(Tensor perSample, Tensor like) =>
        perSample.view([like.shape[0], .. Enumerable.Repeat(1L, (int)like.dim() - 1)]);
}
