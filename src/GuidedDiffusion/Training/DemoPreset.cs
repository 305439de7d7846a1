using GuidedDiffusion.Models;

namespace GuidedDiffusion.Training;

/// <summary>
/// The small configurations the demos (no data_dir) train on the bundled Fashion-MNIST split at 32×32, sized to
/// finish in a few minutes on 2 CPU cores. Each function returns its argument with the demo's values; a caller
/// that knows which settings the user chose (the CLI: the flags that were typed) keeps those.
/// </summary>
public static class DemoPreset
{
    /// <summary>The run folder of the classifier demo.</summary>
    public static string ClassifierRunFolder { get; } = Path.Combine("runs", "demo");

    /// <summary>The run folder of the image-train demo.</summary>
    public static string ImageRunFolder { get; } = Path.Combine("runs", "image-demo");

    /// <summary>One-line summary of the classifier demo as configured (demo values and the flags the user gave).</summary>
    public static string Describe(TrainingConfig training, ClassifierConfig classifier) =>
        $"9,000 train / 1,000 validation images at {classifier.ImageSize}x{classifier.ImageSize}, width {classifier.Width}, depth {classifier.Depth}, "
        + $"{training.Length.Iterations} steps of batch {training.Data.BatchSize}";

    /// <summary>
    /// The classifier demo's loop: 400 annealed steps of batch 32 in fp32 into runs/demo, which a re-run replaces
    /// (its files moved into replaced-&lt;time&gt;/) so the demo can be run twice; a folder the user named, or a
    /// resume, should keep the strict rule (<see cref="CheckpointSettings.Overwrite"/> false).
    /// </summary>
    public static TrainingConfig ClassifierTraining(TrainingConfig training) => training with
    {
        Length = training.Length with { Iterations = 400, AnnealLr = true },
        Data = training.Data with { BatchSize = 32 },
        Optimizer = training.Optimizer with { Lr = 3e-4 },
        Checkpoints = training.Checkpoints with { LogInterval = 50, SaveInterval = 200, LogDir = ClassifierRunFolder, Overwrite = true },
        Validation = training.Validation with { EvalInterval = 10 },
        Precision = training.Precision with { Mode = TrainingPrecision.Fp32 },
    };

    /// <summary>The classifier demo's architecture: width 64, depth 1, three levels at 32×32.</summary>
    public static ClassifierConfig Classifier(ClassifierConfig classifier) => classifier with
    {
        ImageSize = 32,
        Width = 64,
        Depth = 1,
        ChannelMult = [1, 2, 2],
        AttentionResolutions = [16, 8],
        NumHeadChannels = 64,
    };

    /// <summary>One-line summary of the image-train demo as configured (demo values and the flags the user gave).</summary>
    public static string DescribeDiffusion(TrainingConfig training, DiffusionModelConfig model, Diffusion.DiffusionConfig diffusion) =>
        $"9,000 images at {model.ImageSize}x{model.ImageSize}, a UNet with num_channels {model.NumChannels}, channel_mult {model.ChannelMult}, "
        + $"{model.NumResBlocks} res block(s), batch {training.Data.BatchSize}"
        + (training.Length.Iterations is { } steps ? $", {steps} steps" : "")
        + $", the {diffusion.DiffusionSteps}-step {diffusion.NoiseSchedule.Spelling()} process";

    /// <summary>The image-train demo's loop (batch 16, one EMA at 0.999, into runs/image-demo, replaced on a re-run like the classifier demo's).</summary>
    public static TrainingConfig ImageTraining(TrainingConfig training) => training with
    {
        Data = training.Data with { BatchSize = 16 },
        Optimizer = training.Optimizer with { Lr = 3e-4, EmaRate = "0.999" },
        Checkpoints = training.Checkpoints with { LogInterval = 20, SaveInterval = 100, LogDir = ImageRunFolder, Overwrite = true },
    };

    /// <summary>The image-train demo's length: 200 updates (unless the user chose to anneal instead).</summary>
    public static ImageTrainLength ImageTrainingLength(ImageTrainLength length) => length with { Iterations = 200 };

    /// <summary>
    /// The image-train demo's tiny UNet that trains on 2 CPU cores. The process is left at the defaults (1000
    /// linear steps), the one classifier-train's demo trains on: a guiding classifier must share the diffusion
    /// model's process. Sampling can still respace it.
    /// </summary>
    public static DiffusionModelConfig Model(DiffusionModelConfig model) => model with
    {
        ImageSize = 32,
        NumChannels = 32,
        NumResBlocks = 1,
        ChannelMult = [1, 2],
        AttentionResolutions = [16],
        NumHeadChannels = 32,
        NumClasses = 10,
    };
}
