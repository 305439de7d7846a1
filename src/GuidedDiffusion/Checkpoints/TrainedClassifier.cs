using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Checkpoints;

/// <summary>
/// A classifier checkpoint ready for inference: ours (architecture, classes and diffusion read from the
/// JSON sidecar) or any original <c>.pt</c> (architecture from flags; the class count from the checkpoint).
/// </summary>
public sealed class TrainedClassifier : IDisposable
{
    private TrainedClassifier(EncoderUNet model, ClassifierConfig config, DiffusionConfig diffusion, IReadOnlyList<string> classes)
    {
        Model = model;
        Config = config;
        NumClasses = config.NumClasses!.Value;
        Diffusion = diffusion;
        Classes = classes;
    }

    /// <summary>The network, in eval mode.</summary>
    public EncoderUNet Model { get; }

    /// <summary>Its architecture (with the class count resolved).</summary>
    public ClassifierConfig Config { get; }

    /// <summary>The number of logits.</summary>
    public int NumClasses { get; }

    /// <summary>The diffusion it was trained against (the flags' when there is no sidecar).</summary>
    public DiffusionConfig Diffusion { get; }

    /// <summary>Class names by label (numbers when the checkpoint does not record them).</summary>
    public IReadOnlyList<string> Classes { get; }

    /// <summary>
    /// Loads <paramref name="modelPath"/>. With a sidecar (its own, or for an EMA file the model file's of the same
    /// save: <see cref="CheckpointManifest.Find"/>), its config is used; architecture <paramref name="flags"/> are then
    /// only allowed when <paramref name="flagsGiven"/> is false or they agree. Without one, the flags describe the
    /// model and a null NumClasses is read from the checkpoint's output layer.
    /// </summary>
    /// <param name="modelPath">The checkpoint.</param>
    /// <param name="flags">The architecture, for a checkpoint without a sidecar.</param>
    /// <param name="diffusionFlags">The noise process, for a checkpoint without a sidecar.</param>
    /// <param name="flagsGiven">Whether the flags were set explicitly (then a sidecar must agree with every one of them).</param>
    /// <param name="device">Where the model goes after it is read on the CPU (null: it stays there).</param>
    /// <param name="warn">Receives warning lines, settings marked (<see cref="SettingText.Ref"/>); null: they are dropped.</param>
    public static TrainedClassifier Load(string modelPath, ClassifierConfig flags, DiffusionConfig diffusionFlags, bool flagsGiven,
        Device? device = null, Action<string>? warn = null) =>
        Load(modelPath, flags, diffusionFlags, flagsGiven ? null : Array.Empty<string>(), device, warn);

    /// <summary>
    /// <see cref="Load(string, ClassifierConfig, DiffusionConfig, bool, Device?, Action{string}?)"/> where only the
    /// settings in <paramref name="givenSettings"/> (e.g. <c>classifier_width</c>; null: all) were typed: a sidecar must
    /// agree with those, and every one that does not is named with both values in one error.
    /// </summary>
    /// <param name="modelPath">The checkpoint (the setting <c>classifier_path</c>).</param>
    /// <param name="flags">The architecture, for a checkpoint without a sidecar.</param>
    /// <param name="diffusionFlags">The noise process, for a checkpoint without a sidecar.</param>
    /// <param name="givenSettings">The architecture settings the user typed (null: all of them).</param>
    /// <param name="device">Where the model goes after it is read on the CPU (null: it stays there).</param>
    /// <param name="warn">Receives warning lines, settings marked (<see cref="SettingText.Ref"/>); null: they are dropped.</param>
    /// <exception cref="CheckpointException">Missing file, a diffusion model's sidecar, or weights that do not fit.</exception>
    /// <exception cref="ConfigurationException">Flags that disagree with the sidecar.</exception>
    public static TrainedClassifier Load(string modelPath, ClassifierConfig flags, DiffusionConfig diffusionFlags,
        IReadOnlyCollection<string>? givenSettings, Device? device = null, Action<string>? warn = null)
    {
        ArgumentNullException.ThrowIfNull(flags);
        ArgumentNullException.ThrowIfNull(diffusionFlags);
        var (sidecar, manifest) = TrainedModelLoader.Sidecar(modelPath, "classifier_path");
        // A sidecar's disagreement is found before the weights are read.
        var recorded = manifest is null ? null : FromSidecar(modelPath, sidecar!, manifest, flags, givenSettings);
        return TrainedModelLoader.WithWeights(modelPath, weights =>
        {
            var config = recorded ?? FromFlags(flags, weights);
            foreach (var warning in config.AttentionWarnings()) warn?.Invoke(warning);
            var model = TrainedModelLoader.Build(modelPath, weights, () => new EncoderUNet(config), device);
            var classes = manifest?.Classes is { Count: > 0 } names
                ? names
                : Enumerable.Range(0, config.NumClasses!.Value).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            return new TrainedClassifier(model, config, manifest?.Diffusion ?? diffusionFlags, classes);
        });
    }

    /// <summary>The sidecar's architecture, after checking that the settings typed agree with it.</summary>
    private static ClassifierConfig FromSidecar(string modelPath, string sidecar, CheckpointManifest manifest, ClassifierConfig flags, IReadOnlyCollection<string>? givenSettings)
    {
        var saved = manifest.Classifier ?? throw new CheckpointException(modelPath,
            $"'{modelPath}' is not a classifier checkpoint: its sidecar '{sidecar}' records no classifier (a diffusion model?).");
        var config = saved with { UseFp16 = false, UseCheckpoint = flags.UseCheckpoint };
        var typed = flags with { NumClasses = flags.NumClasses ?? config.NumClasses, UseFp16 = false };
        var differences = SettingAgreement.Differences(typed, config, givenSettings);
        if (differences.Count > 0)
            throw new ConfigurationException("classifier_path",
                $"'{modelPath}' records its architecture in '{sidecar}', and flags given disagree with it: "
                + $"{SettingAgreement.Describe(differences, "sidecar")}; drop those flags or fix them.");
        return config;
    }

    /// <summary>The flags' architecture; a class count not given is the checkpoint's output layer's.</summary>
    private static ClassifierConfig FromFlags(ClassifierConfig flags, IReadOnlyDictionary<string, Tensor> weights)
    {
        // A .pt state dict comes back unordered: find the output layer by name, not position.
        var biasKey = ClassifierHead.OutputBiasKey(flags.Pool);
        int outputs = weights.TryGetValue(biasKey, out var bias) ? (int)bias.shape[0] : (int)weights.Last().Value.shape[0];
        return flags with { NumClasses = flags.NumClasses ?? outputs, UseFp16 = false };
    }

    /// <summary>Logits for images <paramref name="x"/> [B, C, H, W] at timesteps <paramref name="t"/> [B], without gradients.</summary>
    public Tensor Logits(Tensor x, Tensor t)
    {
        using var noGrad = no_grad();
        return Model.forward(x, t);
    }

    /// <inheritdoc />
    public void Dispose() => Model.Dispose();
}
