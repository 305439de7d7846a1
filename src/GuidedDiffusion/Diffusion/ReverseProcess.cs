using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Diffusion;

/// <summary>
/// A denoising model as the sampler calls it: images x [B, C, H, W], the timesteps the model sees (already mapped
/// by <see cref="GaussianDiffusion.ModelTimesteps"/>) and labels y (null when there are none) → the model output
/// [B, C or 2C, H, W]. The original's <c>model_fn</c>.
/// </summary>
public delegate Tensor DenoiserFn(Tensor x, Tensor modelTimesteps, Tensor? y);

/// <summary>
/// A guidance gradient as the sampler calls it: x, the mapped timesteps and labels y → a tensor shaped like x
/// (∇ₓ log p(y | x_t), scaled). The original's <c>cond_fn</c>.
/// </summary>
public delegate Tensor ConditionFn(Tensor x, Tensor modelTimesteps, Tensor? y);

/// <summary>Draws standard normal noise shaped like <paramref name="like"/> (its dtype and device).</summary>
public delegate Tensor NoiseFn(Tensor like);

/// <summary>The outputs of <see cref="ReverseProcess.PMeanVariance"/> (the original's dict).</summary>
/// <param name="Mean">Mean of p(x_{t−1} | x_t) [B, C, H, W].</param>
/// <param name="Variance">Its variance, shaped like x.</param>
/// <param name="LogVariance">Its log variance, shaped like x.</param>
/// <param name="PredXstart">The predicted x₀ (clipped to [−1, 1] when requested).</param>
public sealed record PMeanVarianceResult(Tensor Mean, Tensor Variance, Tensor LogVariance, Tensor PredXstart);

/// <summary>The outputs of <see cref="ReverseProcess.QPosteriorMeanVariance"/>: q(x_{t−1} | x_t, x₀).</summary>
/// <param name="Mean">The posterior mean [B, C, H, W].</param>
/// <param name="Variance">The posterior variance [B, 1, 1, 1] (0 at t = 0).</param>
/// <param name="LogVarianceClipped">Its log, with entry 1's value at t = 0 [B, 1, 1, 1].</param>
public sealed record PosteriorResult(Tensor Mean, Tensor Variance, Tensor LogVarianceClipped);

/// <summary>One reverse step: the sample x_{t−1} and the x₀ prediction it came from.</summary>
/// <param name="Sample">x_{t−1} [B, C, H, W].</param>
/// <param name="PredXstart">The x₀ prediction the step used.</param>
public sealed record SampleStep(Tensor Sample, Tensor PredXstart);

/// <summary>Seeded noise sources.</summary>
public static class Noise
{
    /// <summary>
    /// Noise from <paramref name="generator"/>, drawn on the device of the tensor it is shaped like (the generator must
    /// be on that device, as the original draws <c>th.randn_like(x)</c> where x is): the same seed gives the same
    /// samples on one device; a CUDA generator's stream differs from the CPU's.
    /// </summary>
    public static NoiseFn From(Generator generator) =>
        like => randn(like.shape, dtype: like.dtype, device: like.device, generator: generator);
}

/// <summary>
/// The reverse process of the original's <c>GaussianDiffusion</c>/<c>SpacedDiffusion</c>: <c>p_mean_variance</c>,
/// <c>p_sample</c>, <c>ddim_sample</c> and their loops, with classifier guidance through <c>condition_mean</c>
/// (ancestral sampling) and <c>condition_score</c> (DDIM). Both the model and cond_fn receive t mapped through
/// the timestep map (and rescaled with <c>rescale_timesteps</c>), like the original's <c>_WrappedModel</c>. The
/// float64 tables are gathered and cast to float32 before any arithmetic, as <c>_extract_into_tensor</c> does.
/// </summary>
public sealed class ReverseProcess
{
    private readonly double[] logBetas;
    private readonly double[] fixedLargeVariance;
    private readonly double[] fixedLargeLogVariance;

    /// <summary>Creates the reverse process.</summary>
    /// <param name="diffusion">The (spaced) process to sample.</param>
    /// <param name="varianceType">How the model's variance is obtained.</param>
    /// <param name="meanType">What the model's first C channels predict.</param>
    public ReverseProcess(GaussianDiffusion diffusion, ModelVarianceType varianceType, ModelMeanType meanType = ModelMeanType.Epsilon)
    {
        Diffusion = diffusion;
        VarianceType = varianceType;
        MeanType = meanType;
        logBetas = diffusion.Betas.Select(b => Math.Log(b)).ToArray();
        // FIXED_LARGE uses β_t, except at t = 0 where β̃_1 gives a better decoder log-likelihood (the original's choice).
        fixedLargeVariance = diffusion.Betas.ToArray();
        if (fixedLargeVariance.Length > 1) fixedLargeVariance[0] = diffusion.PosteriorVariance[1];
        fixedLargeLogVariance = fixedLargeVariance.Select(b => Math.Log(b)).ToArray();
    }

    /// <summary>The reverse process for the original's diffusion flags: learn_sigma → learned range, else fixed large
    /// (<c>create_gaussian_diffusion</c> with <c>sigma_small=False</c>); predict_xstart → x₀ prediction.</summary>
    /// <param name="config">The diffusion flags.</param>
    public static ReverseProcess For(DiffusionConfig config) => new(
        config.Build(),
        config.LearnSigma ? ModelVarianceType.LearnedRange : ModelVarianceType.FixedLarge,
        config.PredictXstart ? ModelMeanType.StartX : ModelMeanType.Epsilon);

    /// <summary>The process being sampled.</summary>
    public GaussianDiffusion Diffusion { get; }

    /// <summary>How the variance is obtained.</summary>
    public ModelVarianceType VarianceType { get; }

    /// <summary>What the model predicts.</summary>
    public ModelMeanType MeanType { get; }

    /// <summary>log β_t: the upper end of the learned-range interpolation.</summary>
    public IReadOnlyList<double> LogBetas => logBetas;

    /// <summary>
    /// The FIXED_LARGE log variance: log β_t, except log β̃_1 (the posterior variance of step 1) at t = 0.
    /// </summary>
    public IReadOnlyList<double> FixedLargeLogVariance => fixedLargeLogVariance;

    /// <summary>Whether the model must output 2·C channels (its variance is learned).</summary>
    public bool ModelLearnsVariance => VarianceType is ModelVarianceType.LearnedRange or ModelVarianceType.Learned;

    /// <summary>
    /// The original's <c>p_mean_variance</c>: runs the model at the mapped t and returns the mean, variance and
    /// log variance of p(x_{t−1} | x_t) and the predicted x₀ (clipped to [−1, 1] when <paramref name="clipDenoised"/>;
    /// the posterior mean then uses the clipped value).
    /// </summary>
    /// <param name="model">The denoiser.</param>
    /// <param name="x">x_t [B, C, H, W].</param>
    /// <param name="t">Spaced step indices [B] (int64).</param>
    /// <param name="y">Labels for a class-conditional model (passed through), or null.</param>
    /// <param name="clipDenoised">Clip the x₀ prediction to [−1, 1]. The original's default is true.</param>
    public PMeanVarianceResult PMeanVariance(DenoiserFn model, Tensor x, Tensor t, Tensor? y, bool clipDenoised = true)
    {
        using var scope = NewDisposeScope();
        var modelOutput = model(x, Diffusion.ModelTimesteps(t), y);
        return PMeanVarianceFromOutput(modelOutput, x, t, clipDenoised).MoveToOuter();
    }

    /// <summary>
    /// <see cref="PMeanVariance"/> given an already computed model output [B, C or 2C, H, W] (for callers that run
    /// the model themselves, and for tests).
    /// </summary>
    /// <param name="modelOutput">The model's output at the mapped t.</param>
    /// <param name="x">x_t.</param>
    /// <param name="t">Spaced step indices [B].</param>
    /// <param name="clipDenoised">Clip the x₀ prediction to [−1, 1].</param>
    public PMeanVarianceResult PMeanVarianceFromOutput(Tensor modelOutput, Tensor x, Tensor t, bool clipDenoised = true)
    {
        using var scope = NewDisposeScope();
        long channels = x.shape[1];
        long expected = ModelLearnsVariance ? 2 * channels : channels;
        if (modelOutput.dim() != x.dim() || modelOutput.shape[0] != x.shape[0] || modelOutput.shape[1] != expected)
            throw new ArgumentException(
                $"the model output is [{string.Join(", ", modelOutput.shape)}]; {VarianceType} variance needs {expected} channels for x [{string.Join(", ", x.shape)}] "
                + (ModelLearnsVariance ? "(did the model train with learn_sigma?)." : "(a model trained with learn_sigma needs learn_sigma True)."),
                nameof(modelOutput));

        Tensor prediction, variance, logVariance;
        if (ModelLearnsVariance)
        {
            var parts = modelOutput.split(channels, dim: 1);
            prediction = parts[0];
            var varValues = parts[1];
            if (VarianceType == ModelVarianceType.Learned)
            {
                logVariance = varValues;
            }
            else
            {
                var minLog = GaussianDiffusion.Extract(Diffusion.PosteriorLogVarianceClipped, t, x);
                var maxLog = GaussianDiffusion.Extract(logBetas, t, x);
                var frac = (varValues + 1) / 2;
                logVariance = frac * maxLog + (1 - frac) * minLog;
            }
            variance = exp(logVariance);
        }
        else
        {
            prediction = modelOutput;
            var (table, logTable) = VarianceType == ModelVarianceType.FixedLarge
                ? (fixedLargeVariance, fixedLargeLogVariance)
                : (Diffusion.PosteriorVariance, Diffusion.PosteriorLogVarianceClipped);
            variance = GaussianDiffusion.Extract(table, t, x).expand_as(x);
            logVariance = GaussianDiffusion.Extract(logTable, t, x).expand_as(x);
        }

        var predXstart = MeanType == ModelMeanType.StartX ? prediction : PredictXstartFromEps(x, t, prediction);
        if (clipDenoised) predXstart = predXstart.clamp(-1, 1);
        var mean = QPosteriorMean(predXstart, x, t);
        return new PMeanVarianceResult(mean, variance, logVariance, predXstart).MoveToOuter();
    }

    /// <summary>
    /// The original's <c>condition_mean</c> (Sohl-Dickstein et al.): mean + variance · cond_fn(x, mapped t, y),
    /// in float32.
    /// </summary>
    /// <param name="condFn">The guidance gradient.</param>
    /// <param name="pmv">The unguided <see cref="PMeanVariance"/> output.</param>
    /// <param name="x">x_t.</param>
    /// <param name="t">Spaced step indices [B].</param>
    /// <param name="y">Labels passed to <paramref name="condFn"/>.</param>
    public Tensor ConditionMean(ConditionFn condFn, PMeanVarianceResult pmv, Tensor x, Tensor t, Tensor? y)
    {
        using var scope = NewDisposeScope();
        var gradient = condFn(x, Diffusion.ModelTimesteps(t), y);
        var mean = pmv.Mean.to_type(ScalarType.Float32) + pmv.Variance * gradient.to_type(ScalarType.Float32);
        return mean.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The original's <c>condition_score</c> (Song et al.): ε is re-derived from the (clipped) pred_xstart,
    /// ε' = ε − sqrt(1 − ᾱ_t)·cond_fn(x, mapped t, y), and pred_xstart is rebuilt from ε' <b>without</b> clipping
    /// again; the mean is the posterior mean of that. Variance and log variance are those of <paramref name="pmv"/>.
    /// </summary>
    /// <param name="condFn">The guidance gradient.</param>
    /// <param name="pmv">The unguided <see cref="PMeanVariance"/> output.</param>
    /// <param name="x">x_t.</param>
    /// <param name="t">Spaced step indices [B].</param>
    /// <param name="y">Labels passed to <paramref name="condFn"/>.</param>
    public PMeanVarianceResult ConditionScore(ConditionFn condFn, PMeanVarianceResult pmv, Tensor x, Tensor t, Tensor? y)
    {
        using var scope = NewDisposeScope();
        var alphaBar = GaussianDiffusion.Extract(Diffusion.AlphasCumprod, t, x);
        var eps = PredictEpsFromXstart(x, t, pmv.PredXstart);
        // (1 − ᾱ).sqrt() in float32 from the float32 ᾱ, as the original writes it (not the float64 table).
        eps = eps - (1 - alphaBar).sqrt() * condFn(x, Diffusion.ModelTimesteps(t), y);
        var predXstart = PredictXstartFromEps(x, t, eps);
        var mean = QPosteriorMean(predXstart, x, t);
        return new PMeanVarianceResult(mean.MoveToOuterDisposeScope(), pmv.Variance, pmv.LogVariance, predXstart.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The original's <c>p_sample</c>: x_{t−1} = mean + 1[t ≠ 0]·exp(½ log σ²)·noise, with the mean shifted by
    /// <see cref="ConditionMean"/> when <paramref name="condFn"/> is given. The noise is drawn after the model
    /// call and before cond_fn, in the original's order. The returned pred_xstart is the unguided one.
    /// </summary>
    /// <param name="model">The denoiser.</param>
    /// <param name="x">x_t [B, C, H, W].</param>
    /// <param name="t">Spaced step indices [B].</param>
    /// <param name="y">Labels, or null.</param>
    /// <param name="noise">The noise source (called once).</param>
    /// <param name="condFn">Guidance, or null.</param>
    /// <param name="clipDenoised">Clip the x₀ prediction. Default true, like the original.</param>
    public SampleStep PSample(DenoiserFn model, Tensor x, Tensor t, Tensor? y, NoiseFn noise, ConditionFn? condFn = null, bool clipDenoised = true)
    {
        using var scope = NewDisposeScope();
        var pmv = PMeanVariance(model, x, t, y, clipDenoised);
        var z = noise(x);
        var mean = condFn is null ? pmv.Mean : ConditionMean(condFn, pmv, x, t, y);
        var sample = mean + NonzeroMask(t, x) * exp(0.5 * pmv.LogVariance) * z;
        return new SampleStep(sample.MoveToOuterDisposeScope(), pmv.PredXstart.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The original's <c>ddim_sample</c>: with guidance, <see cref="ConditionScore"/> first; then
    /// ε = eps(pred_xstart), σ = η·sqrt((1 − ᾱ_prev)/(1 − ᾱ))·sqrt(1 − ᾱ/ᾱ_prev) and
    /// x_{t−1} = pred_xstart·sqrt(ᾱ_prev) + sqrt(1 − ᾱ_prev − σ²)·ε + 1[t ≠ 0]·σ·noise.
    /// </summary>
    /// <param name="model">The denoiser.</param>
    /// <param name="x">x_t [B, C, H, W].</param>
    /// <param name="t">Spaced step indices [B].</param>
    /// <param name="y">Labels, or null.</param>
    /// <param name="noise">The noise source (called once, even for η = 0, like the original).</param>
    /// <param name="condFn">Guidance, or null.</param>
    /// <param name="eta">η: 0 is deterministic DDIM, 1 matches DDPM's variance.</param>
    /// <param name="clipDenoised">Clip the x₀ prediction. Default true, like the original.</param>
    public SampleStep DdimSample(DenoiserFn model, Tensor x, Tensor t, Tensor? y, NoiseFn noise, ConditionFn? condFn = null,
        double eta = 0.0, bool clipDenoised = true)
    {
        using var scope = NewDisposeScope();
        var pmv = PMeanVariance(model, x, t, y, clipDenoised);
        if (condFn is not null) pmv = ConditionScore(condFn, pmv, x, t, y);
        var eps = PredictEpsFromXstart(x, t, pmv.PredXstart);
        var alphaBar = GaussianDiffusion.Extract(Diffusion.AlphasCumprod, t, x);
        var alphaBarPrev = GaussianDiffusion.Extract(Diffusion.AlphasCumprodPrev, t, x);
        var sigma = eta * sqrt((1 - alphaBarPrev) / (1 - alphaBar)) * sqrt(1 - alphaBar / alphaBarPrev);
        var z = noise(x);
        var meanPred = pmv.PredXstart * sqrt(alphaBarPrev) + sqrt(1 - alphaBarPrev - sigma.pow(2)) * eps;
        var sample = meanPred + NonzeroMask(t, x) * sigma * z;
        return new SampleStep(sample.MoveToOuterDisposeScope(), pmv.PredXstart.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The original's <c>p_sample_loop</c>: from noise (drawn from <paramref name="noise"/> unless
    /// <paramref name="initial"/> is given) through every spaced step T−1 … 0, without gradients (cond_fn enables
    /// them itself). Each step runs in its own dispose scope.
    /// </summary>
    /// <param name="model">The denoiser.</param>
    /// <param name="shape">[B, C, H, W].</param>
    /// <param name="y">Labels, or null.</param>
    /// <param name="noise">The noise source.</param>
    /// <param name="condFn">Guidance, or null.</param>
    /// <param name="clipDenoised">Clip the x₀ predictions. Default true.</param>
    /// <param name="initial">x_T, or null to draw it.</param>
    /// <param name="progress">Called after each step with (steps done, total).</param>
    /// <param name="device">Where x_T is drawn and the loop runs when <paramref name="initial"/> is null (null: the CPU).</param>
    public Tensor PSampleLoop(DenoiserFn model, long[] shape, Tensor? y, NoiseFn noise, ConditionFn? condFn = null,
        bool clipDenoised = true, Tensor? initial = null, Action<int, int>? progress = null, Device? device = null) =>
        Loop(shape, initial, device, noise, progress, (x, t) => PSample(model, x, t, y, noise, condFn, clipDenoised));

    /// <summary>The original's <c>ddim_sample_loop</c>: like <see cref="PSampleLoop"/> with <see cref="DdimSample"/> steps.</summary>
    /// <param name="model">The denoiser.</param>
    /// <param name="shape">[B, C, H, W].</param>
    /// <param name="y">Labels, or null.</param>
    /// <param name="noise">The noise source.</param>
    /// <param name="condFn">Guidance, or null.</param>
    /// <param name="eta">η of every step. Default 0.</param>
    /// <param name="clipDenoised">Clip the x₀ predictions. Default true.</param>
    /// <param name="initial">x_T, or null to draw it.</param>
    /// <param name="progress">Called after each step with (steps done, total).</param>
    /// <param name="device">Where x_T is drawn and the loop runs when <paramref name="initial"/> is null (null: the CPU).</param>
    public Tensor DdimSampleLoop(DenoiserFn model, long[] shape, Tensor? y, NoiseFn noise, ConditionFn? condFn = null,
        double eta = 0.0, bool clipDenoised = true, Tensor? initial = null, Action<int, int>? progress = null, Device? device = null) =>
        Loop(shape, initial, device, noise, progress, (x, t) => DdimSample(model, x, t, y, noise, condFn, eta, clipDenoised));

    /// <summary>x₀ = sqrt(1/ᾱ_t)·x_t − sqrt(1/ᾱ_t − 1)·ε.</summary>
    public Tensor PredictXstartFromEps(Tensor xt, Tensor t, Tensor eps)
    {
        using var scope = NewDisposeScope();
        var result = GaussianDiffusion.Extract(Diffusion.SqrtRecipAlphasCumprod, t, xt) * xt
                     - GaussianDiffusion.Extract(Diffusion.SqrtRecipm1AlphasCumprod, t, xt) * eps;
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>ε = (sqrt(1/ᾱ_t)·x_t − x₀) / sqrt(1/ᾱ_t − 1).</summary>
    public Tensor PredictEpsFromXstart(Tensor xt, Tensor t, Tensor predXstart)
    {
        using var scope = NewDisposeScope();
        var result = (GaussianDiffusion.Extract(Diffusion.SqrtRecipAlphasCumprod, t, xt) * xt - predXstart)
                     / GaussianDiffusion.Extract(Diffusion.SqrtRecipm1AlphasCumprod, t, xt);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The original's <c>q_posterior_mean_variance</c>: q(x_{t−1} | x_t, x₀) with mean coef1_t·x₀ + coef2_t·x_t, the
    /// posterior variance and its log clipped at t = 0 (the log of entry 1 there, since the variance is 0). Variance
    /// and log variance are [B, 1, ...].
    /// </summary>
    public PosteriorResult QPosteriorMeanVariance(Tensor x0, Tensor xt, Tensor t)
    {
        if (!x0.shape.SequenceEqual(xt.shape))
            throw new ArgumentException($"x0 [{string.Join(", ", x0.shape)}] and x_t [{string.Join(", ", xt.shape)}] must have one shape.");
        using var scope = NewDisposeScope();
        var mean = QPosteriorMean(x0, xt, t);
        var variance = GaussianDiffusion.Extract(Diffusion.PosteriorVariance, t, xt);
        var logVariance = GaussianDiffusion.Extract(Diffusion.PosteriorLogVarianceClipped, t, xt);
        return new PosteriorResult(mean.MoveToOuterDisposeScope(), variance.MoveToOuterDisposeScope(), logVariance.MoveToOuterDisposeScope());
    }

    /// <summary>Mean of q(x_{t−1} | x_t, x₀): coef1_t·x₀ + coef2_t·x_t.</summary>
    public Tensor QPosteriorMean(Tensor x0, Tensor xt, Tensor t)
    {
        using var scope = NewDisposeScope();
        var result = GaussianDiffusion.Extract(Diffusion.PosteriorMeanCoef1, t, xt) * x0
                     + GaussianDiffusion.Extract(Diffusion.PosteriorMeanCoef2, t, xt) * xt;
        return result.MoveToOuterDisposeScope();
    }

    private Tensor Loop(long[] shape, Tensor? initial, Device? device, NoiseFn noise, Action<int, int>? progress, Func<Tensor, Tensor, SampleStep> step)
    {
        if (shape.Length < 2) throw new ArgumentException($"shape must be [B, C, ...], got [{string.Join(", ", shape)}].", nameof(shape));
        using var noGrad = no_grad();
        var img = initial?.clone() ?? noise(empty(shape, dtype: ScalarType.Float32, device: device ?? CPU));
        int total = Diffusion.NumTimesteps;
        for (int i = total - 1; i >= 0; i--)
        {
            using var scope = NewDisposeScope();
            var t = full(new long[] { shape[0] }, i, dtype: ScalarType.Int64, device: img.device);
            var next = step(img, t).Sample.MoveToOuterDisposeScope();
            img.Dispose();
            img = next;
            progress?.Invoke(total - i, total);
        }
        return img;
    }

    private static Tensor NonzeroMask(Tensor t, Tensor x)
    {
        var shape = new long[x.dim()];
        Array.Fill(shape, 1L);
        shape[0] = -1;
        return t.ne(0).to_type(x.dtype).view(shape);
    }
}

internal static class PMeanVarianceResultExtensions
{
    public static PMeanVarianceResult MoveToOuter(this PMeanVarianceResult r) => new(
        r.Mean.MoveToOuterDisposeScope(), r.Variance.MoveToOuterDisposeScope(),
        r.LogVariance.MoveToOuterDisposeScope(), r.PredXstart.MoveToOuterDisposeScope());
}
