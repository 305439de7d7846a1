using GuidedDiffusion.Data.Sources;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// The data group: which images a command reads and how it batches them. Training binds it to its data section
/// (<see cref="GuidedDiffusion.Data.Loading.DataOptions"/>, <see cref="TrainingFlags.Data"/>); the evaluation commands to their options.
/// </summary>
internal static class DataFlags
{
    public static readonly SharedFlag DataDir = new("data_dir", "Image folder (empty: the Fashion-MNIST demo's 1,000-image validation split).");
    public static readonly SharedFlag<LabelRule, string> LabelFrom = new("label_from", "Class of an image: prefix (file name before '_', the original) or folder.",
        LabelRules.Parse, rule => rule.Spelling());
    public static readonly SharedFlag BatchSize = new("batch_size", "Images per batch (training: per process).");
    public static readonly SharedFlag NumWorkers = new("num_workers", "Image decoding threads (0: on the main thread).");
    public static readonly SharedFlag SkipBadImages = new("skip_bad_images", "Skip and count unreadable images instead of failing.");
}

/// <summary>The seed group: one seed for every random draw of a command, so that a seed repeats a run.</summary>
internal static class SeedFlags
{
    public static readonly SharedFlag Seed = new("seed", "Seed of every random draw (weights, data order, timesteps, noise, classes: what the command draws); the same seed gives the same results.");
}

/// <summary>The output folder group: where a command writes its files.</summary>
internal static class OutputFlags
{
    /// <summary>Each command says its default folder (a new run folder, or the checkpoint's).</summary>
    public static readonly SharedFlag LogDir = new("log_dir", "Folder for the command's files.");
}

/// <summary>The group of commands that show a classifier one noise level: the timestep it is given.</summary>
internal static class NoiseLevelFlags
{
    public static readonly SharedFlag Timestep = new("timestep", "Timestep t given to the classifier (a spaced index of its diffusion; 0 for a clean classifier).");
}

/// <summary>The group of commands that run a diffusion model's reverse process over many images.</summary>
internal static class DenoisingFlags
{
    /// <summary>Each command says what it does with the images (generate them, evaluate them).</summary>
    public static readonly SharedFlag NumSamples = new("num_samples", "Number of images.");
    public static readonly SharedFlag ClipDenoised = new("clip_denoised", "Clip the x0 predictions to [-1, 1].");
}

/// <summary>The architecture flags a classifier and a diffusion model both have, with the same meaning.</summary>
internal static class ModelShapeFlags
{
    public static readonly SharedFlag ImageSize = new("image_size", "Image side in pixels (64/128/256/512 have the original's channel_mult; others need --channel_mult).");
    public static readonly SharedFlag Dropout = new("dropout", "Dropout rate in the ResBlocks (training only).");
}
