using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Checkpoints;

/// <summary>
/// A diffusion-model checkpoint ready for sampling: ours (architecture and noise process read from the JSON
/// sidecar that <c>image-train</c> writes, also for its <c>ema_RATE_NNNNNN.pt</c> files) or any original
/// <c>*_diffusion.pt</c> (everything from flags, as in the original's classifier_sample.py).
/// </summary>
public sealed class TrainedDiffusionModel : IDisposable
{
    private TrainedDiffusionModel(UNetModel model, DiffusionModelConfig config, DiffusionConfig diffusion, string? sidecar)
    {
        Model = model;
        Config = config;
        Diffusion = diffusion;
        Sidecar = sidecar;
    }

    /// <summary>The network, in eval mode.</summary>
    public UNetModel Model { get; }

    /// <summary>Its architecture.</summary>
    public DiffusionModelConfig Config { get; }

    /// <summary>The process to sample: the one it was trained on, respaced by the sampling flags' timestep_respacing.</summary>
    public DiffusionConfig Diffusion { get; }

    /// <summary>The sidecar the configuration came from (null: from flags).</summary>
    public string? Sidecar { get; }

    /// <summary>
    /// Loads <paramref name="modelPath"/>. With a sidecar (<c>modelNNNNNN.json</c> next to <c>modelNNNNNN.pt</c>
    /// or <c>ema_RATE_NNNNNN.pt</c>: <see cref="CheckpointManifest.Find"/>), its architecture and noise process are used
    /// and flags given (<paramref name="flagsGiven"/>) must agree with them; only <c>timestep_respacing</c> always comes
    /// from <paramref name="diffusionFlags"/>, since sampling usually respaces. Without a sidecar the flags describe it.
    /// </summary>
    /// <exception cref="CheckpointException">Missing file, a classifier's sidecar, or weights that do not fit.</exception>
    /// <exception cref="ConfigurationException">Flags that disagree with the sidecar.</exception>
    /// <param name="modelPath">The checkpoint.</param>
    /// <param name="flags">The architecture, for a checkpoint without a sidecar.</param>
    /// <param name="diffusionFlags">The noise process (its respacing always applies).</param>
    /// <param name="flagsGiven">Whether the flags were set explicitly (then a sidecar must agree with every one of them).</param>
    /// <param name="device">Where the model goes after it is read on the CPU (null: it stays there).</param>
    public static TrainedDiffusionModel Load(string modelPath, DiffusionModelConfig flags, DiffusionConfig diffusionFlags, bool flagsGiven, Device? device = null) =>
        Load(modelPath, flags, diffusionFlags, flagsGiven ? null : Array.Empty<string>(), device);

    /// <summary>
    /// <see cref="Load(string, DiffusionModelConfig, DiffusionConfig, bool, Device?)"/> where only the settings in
    /// <paramref name="givenSettings"/> (e.g. <c>num_channels</c>; null: all) were typed: a sidecar must agree with
    /// those, and every one that does not is named with both values in one error.
    /// </summary>
    /// <param name="modelPath">The checkpoint.</param>
    /// <param name="flags">The architecture, for a checkpoint without a sidecar.</param>
    /// <param name="diffusionFlags">The noise process (its respacing always applies).</param>
    /// <param name="givenSettings">The model and process settings the user typed (null: all of them).</param>
    /// <param name="device">Where the model goes after it is read on the CPU (null: it stays there).</param>
    public static TrainedDiffusionModel Load(string modelPath, DiffusionModelConfig flags, DiffusionConfig diffusionFlags,
        IReadOnlyCollection<string>? givenSettings, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(flags);
        ArgumentNullException.ThrowIfNull(diffusionFlags);
        var (sidecar, manifest) = TrainedModelLoader.Sidecar(modelPath, "model_path");
        var (config, diffusion) = manifest is null ? (flags, diffusionFlags) : FromSidecar(modelPath, sidecar!, manifest, flags, diffusionFlags, givenSettings);
        var model = TrainedModelLoader.WithWeights(modelPath, weights => TrainedModelLoader.Build(modelPath, weights, () => new UNetModel(config), device));
        return new TrainedDiffusionModel(model, config, diffusion, sidecar);
    }

    /// <summary>The sidecar's architecture and process (the sampling settings from the flags), after checking that the settings typed agree.</summary>
    private static (DiffusionModelConfig, DiffusionConfig) FromSidecar(string modelPath, string sidecar, CheckpointManifest manifest,
        DiffusionModelConfig flags, DiffusionConfig diffusionFlags, IReadOnlyCollection<string>? givenSettings)
    {
        var saved = manifest.DiffusionModel ?? throw new CheckpointException(modelPath,
            $"'{modelPath}' is not a diffusion model: its sidecar '{sidecar}' records a classifier.");
        // Settings that do not change the sampled function (or are training-only) are taken from the flags.
        var config = saved with { UseFp16 = flags.UseFp16, UseCheckpoint = flags.UseCheckpoint, Dropout = flags.Dropout };
        var diffusion = manifest.Diffusion with
        {
            TimestepRespacing = diffusionFlags.TimestepRespacing,
            UseKl = diffusionFlags.UseKl,
            RescaleLearnedSigmas = diffusionFlags.RescaleLearnedSigmas,
        };
        var differences = SettingAgreement.Differences(flags, config, givenSettings)
            .Concat(SettingAgreement.Differences(diffusionFlags, diffusion, givenSettings)).ToList();
        if (differences.Count > 0)
            throw new ConfigurationException("model_path",
                $"'{modelPath}' records its architecture and noise process in '{sidecar}', and flags given disagree with it: "
                + $"{SettingAgreement.Describe(differences, "sidecar")}; drop those flags or fix them (only {SettingText.Ref("timestep_respacing")} may differ).");
        return (config, diffusion);
    }

    /// <inheritdoc />
    public void Dispose() => Model.Dispose();
}
