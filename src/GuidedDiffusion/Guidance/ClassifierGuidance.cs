using GuidedDiffusion.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Guidance;

/// <summary>
/// Classifier guidance (Dhariwal &amp; Nichol): the gradient of a noise-aware classifier's log-probability of the
/// wanted classes with respect to the noisy image, times a scale — the original's <c>cond_fn</c> in
/// <c>scripts/classifier_sample.py</c>. The classifier receives the timesteps the sampler hands to cond_fn, i.e. t
/// already mapped through the timestep map (see <see cref="ReverseProcess"/>).
/// </summary>
public sealed class ClassifierGuidance
{
    private readonly nn.Module<Tensor, Tensor, Tensor> classifier;

    /// <summary>Creates the guidance.</summary>
    /// <param name="classifier">A classifier taking (x [B, C, H, W], t [B]) to logits [B, K]; put it in eval mode.</param>
    /// <param name="scale">The classifier scale s (<c>--classifier_scale</c>); the gradient is multiplied by it.</param>
    public ClassifierGuidance(nn.Module<Tensor, Tensor, Tensor> classifier, double scale)
    {
        if (!double.IsFinite(scale))
            throw new ConfigurationException("classifier_scale", $"must be a finite number, got {scale}.");
        this.classifier = classifier;
        Scale = scale;
    }

    /// <summary>The classifier scale.</summary>
    public double Scale { get; }

    /// <summary>
    /// s·∇ₓ Σ_b log_softmax(classifier(x, t))[b, y_b], computed with gradients enabled on a detached copy of x
    /// (so it works inside the samplers' no-grad loops). Only x's gradient is computed; the classifier's parameters
    /// receive none.
    /// </summary>
    /// <param name="x">x_t [B, C, H, W].</param>
    /// <param name="modelTimesteps">The timesteps the classifier sees [B] (mapped, as the sampler passes them).</param>
    /// <param name="y">The wanted classes [B] (int64).</param>
    /// <returns>A float tensor shaped like x.</returns>
    public Tensor Gradient(Tensor x, Tensor modelTimesteps, Tensor? y)
    {
        if (y is null) throw new ArgumentNullException(nameof(y), "classifier guidance needs the wanted classes y.");
        if (y.dim() != 1 || y.shape[0] != x.shape[0])
            throw new ArgumentException($"y must be [B] with B = {x.shape[0]}, got [{string.Join(", ", y.shape)}].", nameof(y));
        using var scope = NewDisposeScope();
        var (_, gradient) = LogProbsAndGradient(classifier, x, modelTimesteps, y);
        return (gradient * Scale).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The classifier's float32 log-probabilities log p(·|x, t) [B, classes] and the unscaled guidance gradient
    /// ∇ₓ Σ_b log p(y_b|x_b, t_b) (shaped like x), both detached, from one forward pass with gradients enabled on a
    /// detached copy of x. In eval mode the samples are independent, so each row of the gradient is that sample's own.
    /// </summary>
    /// <param name="classifier">forward(x, t) → logits.</param>
    /// <param name="x">x_t [B, C, H, W].</param>
    /// <param name="t">The timesteps the classifier sees [B].</param>
    /// <param name="y">The classes [B] (int64).</param>
    public static (Tensor LogProbs, Tensor Gradient) LogProbsAndGradient(nn.Module<Tensor, Tensor, Tensor> classifier, Tensor x, Tensor t, Tensor y)
    {
        using var grad = enable_grad();
        var xIn = x.detach().requires_grad_(true);
        var logProbs = classifier.call(xIn, t).to_type(ScalarType.Float32).log_softmax(1);
        var selected = logProbs.gather(1, y.to_type(ScalarType.Int64).view(-1, 1)).sum();
        var gradient = autograd.grad([selected], [xIn])[0];
        return (logProbs.detach(), gradient.detach());
    }

    /// <summary>This guidance as the sampler's cond_fn.</summary>
    public ConditionFn AsConditionFn() => Gradient;
}
