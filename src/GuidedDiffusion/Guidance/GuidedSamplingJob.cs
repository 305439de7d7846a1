using System.Diagnostics;
using System.Globalization;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Diffusion.Solvers;
using GuidedDiffusion.Formats;
using GuidedDiffusion.Models;
using static TorchSharp.torch;

namespace GuidedDiffusion.Guidance;

/// <summary>The settings of <see cref="GuidedSamplingJob"/> (the original's <c>classifier_sample.py</c> flags, with its defaults).</summary>
public sealed record GuidedSamplingOptions
{
    /// <summary>
    /// The diffusion model: its checkpoint (required), and the architecture and noise process for a checkpoint without a
    /// sidecar; the process's <see cref="DiffusionConfig.TimestepRespacing"/> always applies (the sampling schedule).
    /// </summary>
    public DiffusionModelSource Model { get; init; } = new();
    /// <summary>Classifier checkpoint; its sidecar, if any, supplies the classifier architecture. Required.</summary>
    public string ClassifierPath { get; init; } = "";
    /// <summary>
    /// The classifier's architecture, for checkpoints without a sidecar; its image size is the model's. Its
    /// <see cref="ClassifierConfig.UseFp16"/> is ignored with a warning (float16 is for GPUs).
    /// </summary>
    public ClassifierConfig Classifier { get; init; } = new();
    /// <summary>The settings of <see cref="Classifier"/> typed (a sidecar must agree with each); empty: none.</summary>
    public IReadOnlyCollection<string> ClassifierSettingsGiven { get; init; } = [];
    /// <summary>Guidance scale: the classifier gradient is multiplied by it (0 disables guidance). Default 1.</summary>
    public double ClassifierScale { get; init; } = 1.0;
    /// <summary>Number of images to generate. Default 10000.</summary>
    public int NumSamples { get; init; } = 10000;
    /// <summary>Images per sampling batch. Default 16.</summary>
    public int BatchSize { get; init; } = 16;
    /// <summary>DDIM steps (η 0) instead of ancestral sampling (the original's flag; the same as <see cref="Sampler"/> ddim).</summary>
    public bool UseDdim { get; init; }
    /// <summary>The sampler: ancestral (default), ddim, or a fast solver (dpm_solver, dpm_solver++, unipc) over the full process.</summary>
    public SamplerKind Sampler { get; init; } = SamplerKind.Ancestral;
    /// <summary>The fast solvers' settings (steps, order, method, spacing, ...); their <see cref="SolverOptions.Kind"/> follows <see cref="Sampler"/>.</summary>
    public SolverOptions Solver { get; init; } = new();
    /// <summary>Guide only while the classifier's timestep lies in this interval (every sampler); null: everywhere.</summary>
    public GuidanceInterval? GuidanceInterval { get; init; }
    /// <summary>Clip the x₀ predictions to [−1, 1] (ancestral and DDIM as the original; the solvers clip the model's x₀ before guidance). Default true.</summary>
    public bool ClipDenoised { get; init; } = true;
    /// <summary>The class to generate; null: a random class per image, like the original.</summary>
    public int? ClassId { get; init; }
    /// <summary>Seed for the classes and every noise draw; the same seed gives the same samples.</summary>
    public int Seed { get; init; }
    /// <summary>Folder for <c>samples_NxHxWx3.npz</c> and the PNG grid (created if missing). Default <c>samples</c>.</summary>
    public string OutDir { get; init; } = "samples";
}

/// <summary>What <see cref="GuidedSamplingJob"/> wrote.</summary>
/// <param name="NpzPath">The original's <c>samples_NxHxWx3.npz</c> (arr_0: uint8 NHWC images, arr_1: int64 labels).</param>
/// <param name="GridPath">The PNG grid of the first 64 samples.</param>
/// <param name="Labels">The class of each sample.</param>
/// <param name="ImageSize">The samples' side in pixels.</param>
public sealed record GuidedSamplingResult(string NpzPath, string GridPath, IReadOnlyList<long> Labels, int ImageSize);

/// <summary>
/// The whole of the original's <c>scripts/classifier_sample.py</c>: loads a diffusion model and a noise-aware
/// classifier, checks that they fit together, samples batches with classifier guidance (ancestral, DDIM or a fast
/// solver, optionally within a guidance interval) for random or fixed classes, streams the images into the NPZ file and writes a PNG grid.
/// </summary>
public sealed class GuidedSamplingJob
{
    /// <summary>Images in the PNG grid.</summary>
    public const int GridImages = 64;

    private readonly GuidedSamplingOptions _options;
    private readonly RunContext _run;
    private readonly Device _device;

    /// <summary>Prepares a job; <see cref="Run"/> does the work.</summary>
    /// <param name="options">The settings.</param>
    /// <param name="run">Where the models run and the samples are drawn, where progress lines and warnings go
    /// (null: <see cref="RunContext"/>'s defaults).</param>
    public GuidedSamplingJob(GuidedSamplingOptions options, RunContext? run = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _run = run ?? new RunContext();
        _device = _run.Device;
    }

    /// <summary>Called after every denoising step with (batch index, batches, step, steps).</summary>
    public Action<int, int, int, int>? OnStep { get; init; }

    /// <summary>Called after every batch.</summary>
    public Action? OnBatch { get; init; }

    /// <summary>Samples <see cref="GuidedSamplingOptions.NumSamples"/> images and writes the NPZ file and the grid.</summary>
    /// <exception cref="ConfigurationException">A setting is invalid, or the model and the classifier do not fit together.</exception>
    /// <exception cref="CheckpointException">A checkpoint is missing or unreadable.</exception>
    public GuidedSamplingResult Run()
    {
        var o = _options;
        if (o.Model.Path.Length == 0) throw new ConfigurationException("model_path", "is required: the diffusion model checkpoint.");
        if (o.ClassifierPath.Length == 0) throw new ConfigurationException("classifier_path", "is required: the classifier checkpoint.");
        if (o.NumSamples <= 0) throw new ConfigurationException("num_samples", $"must be positive, got {o.NumSamples}.");
        if (o.BatchSize <= 0) throw new ConfigurationException("batch_size", $"must be positive, got {o.BatchSize}.");
        var sampler = EffectiveSampler(o);
        if (sampler.Solver() is { } solverKind) (o.Solver with { Kind = solverKind }).Validate();

        // Our checkpoints carry a sidecar with the architecture; the original's need the settings.
        using var trained = o.Model.Load(_device);
        var modelConfig = trained.Config;
        var diffusionConfig = trained.Diffusion;
        if (trained.Sidecar is not null) _run.Log($"diffusion model: architecture and noise process from {trained.Sidecar}");
        if (modelConfig.UseFp16 || o.Classifier.UseFp16)
            _run.Warn($"warning: {SettingText.Ref("use_fp16")}/{SettingText.Ref("classifier_use_fp16")} are ignored on CPU (float16 is 30-70x slower there); sampling in float32.");

        // A classifier without a sidecar (the original's) was trained on the model's process; the sampling respacing is not its own.
        using var classifier = TrainedClassifier.Load(o.ClassifierPath, o.Classifier with { ImageSize = modelConfig.ImageSize },
            diffusionConfig with { TimestepRespacing = "" }, o.ClassifierSettingsGiven, _device, _run.Warn);
        int numClasses = CheckCompatible(classifier, modelConfig, diffusionConfig, trained.Model.IsClassConditional);
        if (o.ClassId is { } fixedClass && (fixedClass < 0 || fixedClass >= numClasses))
            throw new ConfigurationException("class_id", $"must be -1 or a class below {numClasses}, got {fixedClass}.");

        // Milliseconds: the native kernels of both models' unusual layers against float64 on this CPU (issue 24).
        if (_device.type == TorchSharp.DeviceType.CPU)
        {
            foreach (var model in new nn.Module[] { trained.Model, classifier.Model })
                if (KernelSelfCheck.EnsureCorrect(model, Runtime.CpuFeatures.Current) is { } line) _run.Log(line);
        }

        var processConfig = diffusionConfig;
        if (sampler.Solver() is not null && diffusionConfig.TimestepRespacing.Length > 0)
        {
            // The solvers pick their own times on the full process; a respacing would only coarsen their schedule.
            _run.Warn($"warning: {SettingText.Ref("timestep_respacing")} '{diffusionConfig.TimestepRespacing}' is ignored by {sampler.Spelling()}, "
                + $"which integrates the full {diffusionConfig.DiffusionSteps}-step process in {SettingText.Ref("steps")} {o.Solver.Steps} steps.");
            processConfig = diffusionConfig with { TimestepRespacing = "" };
        }
        var guided = new GuidedSampler(trained.Model, ReverseProcess.For(processConfig), new ClassifierGuidance(classifier.Model, o.ClassifierScale));
        return Sample(guided, sampler, numClasses, modelConfig.ImageSize);
    }

    /// <summary>The sampler <paramref name="o"/> asks for: <see cref="GuidedSamplingOptions.UseDdim"/> selects DDIM unless another sampler is named.</summary>
    /// <exception cref="ConfigurationException">use_ddim together with a fast solver.</exception>
    private static SamplerKind EffectiveSampler(GuidedSamplingOptions o)
    {
        if (!o.UseDdim) return o.Sampler;
        if (o.Sampler is SamplerKind.Ancestral or SamplerKind.Ddim) return SamplerKind.Ddim;
        throw new ConfigurationException("use_ddim", $"selects DDIM, but {SettingText.Ref("sampler")} is {o.Sampler.Spelling()}; give one of them.");
    }

    /// <summary>The original's checks that a classifier can guide a model; returns the number of classes to draw from.</summary>
    private int CheckCompatible(TrainedClassifier classifier, DiffusionModelConfig modelConfig, DiffusionConfig diffusionConfig, bool classConditional)
    {
        var classifierFile = _options.ClassifierPath;
        if (classifier.Config.ImageSize != modelConfig.ImageSize)
            throw new ConfigurationException("image_size",
                $"the classifier '{classifierFile}' takes {classifier.Config.ImageSize}-pixel images but the diffusion model samples {modelConfig.ImageSize}.");
        if (classifier.Diffusion.DiffusionSteps != diffusionConfig.DiffusionSteps || classifier.Diffusion.NoiseSchedule != diffusionConfig.NoiseSchedule)
            throw new ConfigurationException("classifier_path",
                $"the classifier '{classifierFile}' was trained on a {classifier.Diffusion.DiffusionSteps}-step {classifier.Diffusion.NoiseSchedule.Spelling()} process "
                + $"but the diffusion model samples a {diffusionConfig.DiffusionSteps}-step {diffusionConfig.NoiseSchedule.Spelling()} one: its timesteps would mean other noise levels. "
                + $"Train the classifier with the model's {SettingText.Ref("diffusion_steps")} and {SettingText.Ref("noise_schedule")}.");
        if (classifier.Diffusion.TimestepRespacing.Length > 0)
            _run.Warn($"warning: the classifier was trained with {SettingText.Ref("timestep_respacing")} '{classifier.Diffusion.TimestepRespacing}', "
                + "so it saw spaced step indices; while sampling it receives steps of the original process (0..diffusion_steps-1), as in the original.");
        int numClasses = classifier.NumClasses;
        return classConditional ? Math.Min(numClasses, modelConfig.NumClasses) : numClasses;
    }

    private GuidedSamplingResult Sample(GuidedSampler guided, SamplerKind sampler, int numClasses, int size)
    {
        var o = _options;
        int samples = o.NumSamples;
        // One generator on the sampling device draws the classes and every noise tensor, as the original draws them there.
        using var generator = new Generator((ulong)o.Seed, _device);
        var noise = Noise.From(generator);
        int imageBytes = size * size * 3;
        var gridPixels = new byte[Math.Min(samples, GridImages) * imageBytes];
        var labels = new long[samples];
        int batches = (samples + o.BatchSize - 1) / o.BatchSize;
        Directory.CreateDirectory(o.OutDir);
        string shape = $"{samples}x{size}x{size}x3";
        string npz = Path.Combine(o.OutDir, $"samples_{shape}.npz");
        string png = Path.Combine(o.OutDir, $"samples_{shape}.png");
        // Images go to a raw file as they are made: 10000 samples at 512² exceed a .NET array.
        string raw = Path.Combine(o.OutDir, $".samples_{shape}.{Guid.NewGuid():N}.u8");
        var clock = Stopwatch.StartNew();
        try
        {
            using (var rawFile = new FileStream(raw, FileMode.CreateNew, FileAccess.Write))
            {
                for (int b = 0, done = 0; done < samples; b++)
                {
                    using var scope = NewDisposeScope();
                    int count = Math.Min(o.BatchSize, samples - done);
                    var classes = o.ClassId is { } fixedClass
                        ? full(new long[] { count }, fixedClass, dtype: ScalarType.Int64, device: _device)
                        : randint(numClasses, new long[] { count }, dtype: ScalarType.Int64, device: _device, generator: generator);
                    int batchIndex = b;
                    var images = guided.SampleBatch(classes, sampler, o.Solver, noise, o.GuidanceInterval, o.ClipDenoised,
                        progress: (step, total) => OnStep?.Invoke(batchIndex, batches, step, total));
                    var bytes = ComputeDevice.ToArray<byte>(images);
                    rawFile.Write(bytes);
                    for (int i = 0; i < count && done + i < GridImages; i++)
                        Array.Copy(bytes, i * imageBytes, gridPixels, (done + i) * imageBytes, imageBytes);
                    ComputeDevice.ToArray<long>(classes).CopyTo(labels, done);
                    done += count;
                    OnBatch?.Invoke();
                    _run.Log($"created {done}/{samples} samples ({clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s)");
                }
            }
            NpzWriter.Write(npz, NpzWriter.UInt8File(raw, samples, size, size, 3), NpzWriter.Int64(labels, samples));
        }
        finally
        {
            File.Delete(raw);
        }
        ImageGrid.WritePng(png, gridPixels, Math.Min(samples, GridImages), size, size);
        _run.Log($"saved {npz} and {png}");
        return new GuidedSamplingResult(npz, png, labels, size);
    }
}
