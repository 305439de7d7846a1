using System.Text.RegularExpressions;
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
public sealed partial class TrainedDiffusionModel : IDisposable
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
    /// or <c>ema_RATE_NNNNNN.pt</c>), its architecture and noise process are used and flags given
    /// (<paramref name="flagsGiven"/>) must agree with them; only <c>timestep_respacing</c> always comes from
    /// <paramref name="diffusionFlags"/>, since sampling usually respaces. Without a sidecar the flags describe it.
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
        var loaded = ComputeDevice.OnCpu(() => LoadOnCpu(modelPath, flags, diffusionFlags, givenSettings));
        if (device is not null) loaded.Model.to(device);
        return loaded;
    }

    private static TrainedDiffusionModel LoadOnCpu(string modelPath, DiffusionModelConfig flags, DiffusionConfig diffusionFlags, IReadOnlyCollection<string>? givenSettings)
    {
        ArgumentNullException.ThrowIfNull(flags);
        ArgumentNullException.ThrowIfNull(diffusionFlags);
        if (!File.Exists(modelPath))
            throw new CheckpointException(modelPath, $"{SettingText.Ref("model_path")} '{modelPath}' does not exist.");
        var sidecar = SidecarFor(modelPath);
        var config = flags;
        var diffusion = diffusionFlags;
        if (sidecar is not null)
        {
            var manifest = CheckpointManifest.Read(sidecar);
            var saved = manifest.DiffusionModel ?? throw new CheckpointException(modelPath,
                $"'{modelPath}' is not a diffusion model: its sidecar '{sidecar}' records a classifier.");
            // Settings that do not change the sampled function (or are training-only) are taken from the flags.
            config = saved with { UseFp16 = flags.UseFp16, UseCheckpoint = flags.UseCheckpoint, Dropout = flags.Dropout };
            diffusion = manifest.Diffusion with
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
        }
        var model = new UNetModel(config);
        try
        {
            StateDictIO.Load(model, modelPath);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return new TrainedDiffusionModel(model, config, diffusion, sidecar);
    }

    /// <summary>
    /// The sidecar of a checkpoint: <c>X.json</c> for <c>X.pt</c>, or for <c>ema_RATE_NNNNNN.pt</c> the
    /// <c>modelNNNNNN.json</c> of the same save; null when there is none.
    /// </summary>
    public static string? SidecarFor(string modelPath)
    {
        var direct = CheckpointManifest.PathFor(modelPath);
        if (File.Exists(direct)) return direct;
        var match = EmaName().Match(Path.GetFileName(modelPath));
        if (!match.Success) return null;
        var sibling = Path.Combine(Path.GetDirectoryName(modelPath) ?? "", $"model{match.Groups[1].Value}.json");
        return File.Exists(sibling) ? sibling : null;
    }

    /// <inheritdoc />
    public void Dispose() => Model.Dispose();

    [GeneratedRegex(@"^ema_[0-9.eE+-]+_(\d+)\.(pt|safetensors)$")]
    private static partial Regex EmaName();
}
