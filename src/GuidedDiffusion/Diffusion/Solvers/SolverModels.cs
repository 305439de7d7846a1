using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Diffusion.Solvers;

/// <summary>
/// The one model callback every solver runs on: the noise prediction ε(x_t, t) [B, C, H, W] at continuous time
/// t ∈ [1/N, 1] (the same t for the whole batch). Guidance composes by wrapping it (<see cref="SolverModels.WithGuidance"/>).
/// </summary>
public delegate Tensor NoisePredictionFn(Tensor x, double t);

/// <summary>What a solver reports after each (outer) step: the step number (1-based), the number of steps, the time
/// reached and the state there (owned by the solver: clone it to keep it).</summary>
/// <param name="Step">Steps done.</param>
/// <param name="Steps">Steps in all.</param>
/// <param name="T">The continuous time of <paramref name="X"/>.</param>
/// <param name="X">x at <paramref name="T"/>.</param>
public sealed record SolverStep(int Step, int Steps, double T, Tensor X);

/// <summary>Builds and wraps <see cref="NoisePredictionFn"/>s.</summary>
public static class SolverModels
{
    /// <summary>
    /// The noise prediction of a guided-diffusion model: <paramref name="model"/> runs at the model time of t
    /// (<see cref="DiscreteNoiseSchedule.ModelTime"/>, fractional), a learned-sigma model's variance channels are
    /// dropped (ε is its first C channels), and an x₀-predicting model's output is turned into ε = (x − α_t·x₀)/σ_t
    /// (DPM-Solver's <c>model_type="x_start"</c>).
    /// </summary>
    /// <param name="model">The denoiser (x, model timesteps, y).</param>
    /// <param name="schedule">The schedule the solver integrates.</param>
    /// <param name="y">Labels for a class-conditional model, or null.</param>
    /// <param name="meanType">What the model's first C channels predict.</param>
    public static NoisePredictionFn FromDenoiser(DenoiserFn model, DiscreteNoiseSchedule schedule, Tensor? y, ModelMeanType meanType = ModelMeanType.Epsilon) =>
        (x, t) =>
        {
            using var scope = NewDisposeScope();
            var output = model(x, schedule.ModelTimesteps(t, x.shape[0], x.device), y);
            if (output.shape[1] != x.shape[1] && output.shape[1] != 2 * x.shape[1])
                throw new ArgumentException($"the model output has {output.shape[1]} channels; expected {x.shape[1]} or {2 * x.shape[1]} (learned sigma) for x [{string.Join(", ", x.shape)}].");
            var prediction = output.shape[1] == x.shape[1] ? output : output[.., ..(int)x.shape[1]];
            if (meanType == ModelMeanType.StartX)
                prediction = (x - schedule.MarginalAlpha(t) * prediction) / schedule.MarginalStd(t);
            return prediction.contiguous().MoveToOuterDisposeScope();
        };

    /// <summary>
    /// The original's <c>clip_denoised</c> for the solvers: the model's x₀ = (x − σ_t·ε)/α_t is clipped to [−1, 1] and ε
    /// re-derived from it, ε' = (x − α_t·clip(x₀))/σ_t. Wrapped inside <see cref="WithGuidance"/> this is exactly the
    /// original DDIM's order (<c>p_mean_variance</c> clips, <c>condition_score</c> re-derives ε from the clipped x₀ and
    /// then subtracts the guidance), so a first-order solver takes DDIM's steps. The reference solvers do not clip.
    /// </summary>
    /// <param name="eps">The noise prediction.</param>
    /// <param name="schedule">The schedule (α_t, σ_t).</param>
    public static NoisePredictionFn ClipDenoised(NoisePredictionFn eps, DiscreteNoiseSchedule schedule) =>
        (x, t) =>
        {
            using var scope = NewDisposeScope();
            double alpha = schedule.MarginalAlpha(t), sigma = schedule.MarginalStd(t);
            var x0 = ((x - sigma * eps(x, t)) / alpha).clamp(-1.0, 1.0);
            return ((x - alpha * x0) / sigma).MoveToOuterDisposeScope();
        };

    /// <summary>
    /// Classifier guidance on the noise prediction (DPM-Solver's <c>guidance_type="classifier"</c>, the original's
    /// <c>condition_score</c>): ε̃ = ε − σ_t·cond_fn(x, model time, y), where cond_fn already carries the scale s, so
    /// ε̃ = ε − s·σ_t·∇ₓ log p(y | x_t, t). cond_fn is called first, with the same model time the model sees.
    /// </summary>
    /// <param name="eps">The unguided noise prediction.</param>
    /// <param name="condFn">The scaled guidance gradient (e.g. a restricted <c>ClassifierGuidance</c>).</param>
    /// <param name="schedule">The schedule (for σ_t and the model time).</param>
    /// <param name="y">The wanted classes, passed to <paramref name="condFn"/>.</param>
    public static NoisePredictionFn WithGuidance(NoisePredictionFn eps, ConditionFn condFn, DiscreteNoiseSchedule schedule, Tensor? y) =>
        (x, t) =>
        {
            using var scope = NewDisposeScope();
            var gradient = condFn(x, schedule.ModelTimesteps(t, x.shape[0], x.device), y);
            var noise = eps(x, t);
            return (noise - schedule.MarginalStd(t) * gradient.to_type(noise.dtype)).MoveToOuterDisposeScope();
        };

    /// <summary>
    /// Dynamic thresholding (Saharia et al., the references' <c>dynamic_thresholding_fn</c>): per sample s = the
    /// <paramref name="ratio"/> quantile of |x₀| (linear interpolation, as <c>torch.quantile</c>), at least
    /// <paramref name="maxValue"/>; x₀ is clipped to [−s, s] and divided by s.
    /// </summary>
    /// <param name="x0">x₀ predictions [B, ...].</param>
    /// <param name="ratio">The quantile (0.995 in the references).</param>
    /// <param name="maxValue">The smallest s (1 in the references).</param>
    public static Tensor DynamicThreshold(Tensor x0, double ratio, double maxValue)
    {
        using var scope = NewDisposeScope();
        long batch = x0.shape[0];
        var sorted = x0.abs().reshape(batch, -1).sort(dim: 1).Values;
        long n = sorted.shape[1];
        double position = ratio * (n - 1);
        long lo = (long)Math.Floor(position), hi = Math.Min(lo + 1, n - 1);
        double weight = position - lo;
        var low = sorted[.., lo];
        var high = sorted[.., hi];
        // torch.lerp's two-sided form, which torch.quantile uses.
        var s = weight < 0.5 ? low + weight * (high - low) : high - (1.0 - weight) * (high - low);
        s = s.clamp_min(maxValue);
        var shape = new long[x0.dim()];
        Array.Fill(shape, 1L);
        shape[0] = batch;
        s = s.view(shape);
        return (x0.maximum(-s).minimum(s) / s).MoveToOuterDisposeScope();
    }
}

/// <summary>The data or noise prediction a solver steps with, from ε: x₀ = (x − σ_t·ε)/α_t, optionally thresholded.</summary>
internal sealed class SolverModel
{
    private readonly NoisePredictionFn eps;
    private readonly DiscreteNoiseSchedule ns;
    private readonly SolverOptions options;

    public SolverModel(NoisePredictionFn eps, DiscreteNoiseSchedule ns, SolverOptions options, bool predictData)
    {
        this.eps = eps;
        this.ns = ns;
        this.options = options;
        PredictsData = predictData;
    }

    public bool PredictsData { get; }

    /// <summary>Model evaluations so far.</summary>
    public int Evaluations { get; private set; }

    public Tensor Evaluate(Tensor x, double t)
    {
        Evaluations++;
        if (!PredictsData) return eps(x, t);
        using var scope = NewDisposeScope();
        var noise = eps(x, t);
        var x0 = (x - ns.MarginalStd(t) * noise) / ns.MarginalAlpha(t);
        if (options.Thresholding) x0 = SolverModels.DynamicThreshold(x0, options.ThresholdingRatio, options.ThresholdingMaxValue);
        return x0.MoveToOuterDisposeScope();
    }
}
