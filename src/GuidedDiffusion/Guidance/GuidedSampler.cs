using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Diffusion.Solvers;
using GuidedDiffusion.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Guidance;

/// <summary>
/// The sampling half of the original's <c>scripts/classifier_sample.py</c>: a diffusion model, its (spaced)
/// process and optional classifier guidance; draws batches of images for given classes with ancestral sampling,
/// DDIM or a fast ODE solver (DPM-Solver, DPM-Solver++, UniPC), optionally guiding only within a
/// <see cref="GuidanceInterval"/>, and returns them as uint8 NHWC, as the script saves them.
/// </summary>
public sealed class GuidedSampler
{
    /// <summary>Creates the sampler.</summary>
    /// <param name="model">The diffusion model (put it in eval mode).</param>
    /// <param name="sampler">The reverse process; its variance type must fit the model's output channels.</param>
    /// <param name="guidance">Classifier guidance, or null for unguided sampling.</param>
    /// <exception cref="ConfigurationException">The model's outputs do not fit the diffusion's learn_sigma.</exception>
    public GuidedSampler(UNetModel model, ReverseProcess sampler, ClassifierGuidance? guidance)
    {
        int expected = sampler.ModelLearnsVariance ? 2 * model.Options.InChannels : model.Options.InChannels;
        if (model.Options.OutChannels != expected)
            throw new ConfigurationException("learn_sigma",
                $"the model has {model.Options.OutChannels} output channels but the diffusion expects {expected} "
                + $"(learn_sigma {sampler.ModelLearnsVariance}); use the same {SettingText.Ref("learn_sigma")} for the model and the diffusion.");
        Model = model;
        Process = sampler;
        Guidance = guidance;
    }

    /// <summary>The diffusion model.</summary>
    public UNetModel Model { get; }

    /// <summary>The reverse process.</summary>
    public ReverseProcess Process { get; }

    /// <summary>The guidance, or null.</summary>
    public ClassifierGuidance? Guidance { get; }

    /// <summary>The original's <c>model_fn</c>: labels reach the model only when it is class-conditional.</summary>
    public Tensor ModelFn(Tensor x, Tensor modelTimesteps, Tensor? y) => Model.forward(x, modelTimesteps, Model.IsClassConditional ? y : null);

    /// <summary>
    /// Samples one batch of images for <paramref name="classes"/> (int64 [B]) with ancestral sampling or DDIM and returns
    /// them as uint8 NHWC (<see cref="ToUInt8Nhwc"/>). The batch is sampled on the device of <paramref name="classes"/>,
    /// where the models must be.
    /// </summary>
    /// <param name="classes">The wanted class of each image (guidance target and, for class-conditional models, y).</param>
    /// <param name="useDdim">DDIM steps (<c>--use_ddim</c>) instead of ancestral p_sample steps.</param>
    /// <param name="noise">The noise source (x_T and every step's noise).</param>
    /// <param name="clipDenoised">Clip x₀ predictions (<c>--clip_denoised</c>). Default true.</param>
    /// <param name="eta">DDIM η. Default 0.</param>
    /// <param name="progress">Called after every step with (done, total).</param>
    public Tensor SampleBatch(Tensor classes, bool useDdim, NoiseFn noise, bool clipDenoised = true, double eta = 0.0,
        Action<int, int>? progress = null) =>
        SampleBatch(classes, useDdim ? SamplerKind.Ddim : SamplerKind.Ancestral, new SolverOptions(), noise, null, clipDenoised, eta, progress);

    /// <summary>
    /// Samples one batch with any sampler: ancestral and DDIM as the original (over this sampler's process, respaced or
    /// not), or a fast solver over the full process (then the process must not be respaced). Guidance, when there is
    /// some and its scale is not 0, is applied only where <paramref name="interval"/> allows (everywhere when null).
    /// Returns uint8 NHWC.
    /// </summary>
    /// <param name="classes">The wanted class of each image [B] (int64).</param>
    /// <param name="sampler">The sampler.</param>
    /// <param name="solver">The solver settings (its <see cref="SolverOptions.Kind"/> is taken from <paramref name="sampler"/>); ignored by ancestral and DDIM.</param>
    /// <param name="noise">The noise source (x_T and, for ancestral and DDIM, every step's noise).</param>
    /// <param name="interval">Where guidance applies, or null for everywhere.</param>
    /// <param name="clipDenoised">Clip the model's x₀ predictions to [−1, 1] (the original's default): in ancestral and
    /// DDIM steps as the original; for the solvers with <see cref="SolverModels.ClipDenoised"/>, before the guidance term
    /// (false gives the reference solvers' unclipped behaviour).</param>
    /// <param name="eta">DDIM η. Default 0.</param>
    /// <param name="progress">Called after every step with (done, total).</param>
    /// <exception cref="ConfigurationException">A solver setting is invalid, or a solver is asked to run on a respaced process.</exception>
    public Tensor SampleBatch(Tensor classes, SamplerKind sampler, SolverOptions solver, NoiseFn noise, GuidanceInterval? interval = null,
        bool clipDenoised = true, double eta = 0.0, Action<int, int>? progress = null)
    {
        using var scope = NewDisposeScope();
        int size = Model.Options.ImageSize;
        var shape = new[] { classes.shape[0], Model.Options.InChannels, size, size };
        var condFn = Guidance?.AsConditionFn();
        if (condFn is not null && interval is { } range) condFn = range.Restrict(condFn);
        Tensor sample;
        if (sampler.Solver() is { } kind)
        {
            var options = solver with { Kind = kind };
            options.Validate();
            // DPM-Solver clips the noisiest steps (λ < −5.1) as its reference does; UniPC's reference does not.
            var schedule = DiscreteNoiseSchedule.For(Process.Diffusion, clipLambda: kind != SolverKind.UniPC);
            var xT = noise(empty(shape, dtype: ScalarType.Float32, device: classes.device));
            var eps = SolverModels.FromDenoiser(ModelFn, schedule, classes, Process.MeanType);
            if (clipDenoised) eps = SolverModels.ClipDenoised(eps, schedule);
            // Scale 0 is unguided: the classifier's forward and backward passes are skipped.
            if (condFn is not null && Guidance!.Scale != 0) eps = SolverModels.WithGuidance(eps, condFn, schedule, classes);
            Action<SolverStep>? onStep = progress is null ? null : step => progress(step.Step, step.Steps);
            sample = kind == SolverKind.UniPC
                ? UniPC.Sample(eps, schedule, xT, options, onStep)
                : DpmSolver.Sample(eps, schedule, xT, options, onStep);
        }
        else
        {
            sample = sampler == SamplerKind.Ddim
                ? Process.DdimSampleLoop(ModelFn, shape, classes, noise, condFn, eta, clipDenoised, progress: progress, device: classes.device)
                : Process.PSampleLoop(ModelFn, shape, classes, noise, condFn, clipDenoised, progress: progress, device: classes.device);
        }
        return ToUInt8Nhwc(sample).MoveToOuterDisposeScope();
    }

    /// <summary>The script's conversion: ((x + 1)·127.5).clamp(0, 255) truncated to uint8, then NCHW → NHWC.</summary>
    public static Tensor ToUInt8Nhwc(Tensor sample)
    {
        using var scope = NewDisposeScope();
        var pixels = ((sample + 1) * 127.5).clamp(0, 255).to_type(ScalarType.Byte);
        return pixels.permute(0, 2, 3, 1).contiguous().MoveToOuterDisposeScope();
    }
}
