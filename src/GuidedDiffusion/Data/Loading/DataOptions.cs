using GuidedDiffusion.Data.Sources;

namespace GuidedDiffusion.Data.Loading;

/// <summary>
/// The data section: which images and how they are batched. Defaults follow the original classifier trainer where
/// it has one (batch 4, random crop and flip for training data); <see cref="ImageTrainDefaults"/> has image_train.py's.
/// The training settings hold one of these; a job opens its data with the run's image size, seed, rank and resume
/// position (<see cref="ImageSize"/>, <see cref="Seed"/>, <see cref="Rank"/>, <see cref="WorldSize"/>, <see cref="StartBatch"/>).
/// </summary>
public sealed record DataOptions
{
    /// <summary><c>data_dir</c>: the image folder (see <see cref="OpenFolder"/>); empty: the caller's default (the demo data). Default empty.</summary>
    public string DataDir { get; init; } = "";

    /// <summary><c>label_from</c>: an image's class from its file-name <c>prefix</c> before '_' (the original) or its <c>folder</c>.</summary>
    public LabelRule LabelFrom { get; init; } = LabelRule.Prefix;

    /// <summary>Side S of the square images produced. Default 64.</summary>
    public int ImageSize { get; init; } = 64;

    /// <summary><c>batch_size</c>: images per batch on this rank. Default 4 (image_train.py: 1).</summary>
    public int BatchSize { get; init; } = 4;

    /// <summary><c>random_crop</c>: random-resized crop (short side drawn from [S, ⌈S/0.8⌉]) instead of the centre crop. Default true (image_train.py: false).</summary>
    public bool RandomCrop { get; init; } = true;

    /// <summary><c>random_flip</c>: mirror each image left–right with probability 0.5. Default true.</summary>
    public bool RandomFlip { get; init; } = true;

    /// <summary><c>shuffle</c>: reshuffle this rank's files every epoch (from <see cref="Seed"/> and the epoch number). Default true.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Drop the last incomplete batch of each epoch (the original's drop_last=True). Default true.</summary>
    public bool DropLast { get; init; } = true;

    /// <summary><c>num_workers</c>: threads that decode and augment; 0 decodes on the caller's thread. Default: one per processor.</summary>
    public int NumWorkers { get; init; } = Environment.ProcessorCount;

    /// <summary>How many batches may be in preparation ahead of the one being consumed (bounds memory). Default 4.</summary>
    public int PrefetchBatches { get; init; } = 4;

    /// <summary>Seed of the epoch shuffles and of the per-sample augmentation draws. Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>This process's rank; it takes files[Rank::WorldSize]. Default 0.</summary>
    public int Rank { get; init; }

    /// <summary>Number of processes sharing the data. Default 1.</summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>
    /// Position in the batch stream to start at (batches already consumed). Resuming training with the
    /// number of completed steps continues exactly the stream an uninterrupted run would have seen. Default 0.
    /// </summary>
    public long StartBatch { get; init; }

    /// <summary><c>skip_bad_images</c>: skip (and count) images that fail to decode instead of failing. Default false.</summary>
    public bool SkipBadImages { get; init; }

    /// <summary>image_train.py's data: batch 1 and no random crop (its load_data default).</summary>
    public static DataOptions ImageTrainDefaults { get; } = new() { BatchSize = 1, RandomCrop = false };

    /// <summary>
    /// Options for validation data: centre crop, and random flips only when <paramref name="flip"/> (the original
    /// flips validation images too; unflipped evaluation is repeatable).
    /// </summary>
    public DataOptions ForValidation(bool flip = false) => this with { RandomCrop = false, RandomFlip = flip };

    /// <summary>
    /// No random augmentation at all (centre crop, no flip): the batch content then depends only on the
    /// file order, which distributed-equivalence tests need. Combine with <c>Shuffle = false</c> for a fixed order.
    /// </summary>
    public DataOptions WithoutAugmentation() => this with { RandomCrop = false, RandomFlip = false };

    /// <summary>
    /// Opens <paramref name="directory"/> (default <see cref="DataDir"/>) with the <see cref="LabelFrom"/> rule, or null
    /// when it is empty; <paramref name="classes"/> (validation data) are the known classes. Under
    /// <see cref="SkipBadImages"/> unreadable files are left out before the classes are taken; images are decoded
    /// under <paramref name="decodeLimit"/> (null: <see cref="Decoding.ImageDecodeLimit.Default"/>).
    /// </summary>
    public ImageFolderSource? OpenFolder(string? directory = null, ClassMap? classes = null, Decoding.ImageDecodeLimit? decodeLimit = null)
    {
        directory ??= DataDir;
        return string.IsNullOrWhiteSpace(directory) ? null : new ImageFolderSource(directory, LabelFrom, classes, SkipBadImages, decodeLimit);
    }

    /// <summary>Throws when an option is out of range, naming it (the settings a user types by their setting names).</summary>
    /// <exception cref="ConfigurationException">A batch size below 1 or a negative worker count.</exception>
    public void Validate()
    {
        if (BatchSize < 1) throw new ConfigurationException("batch_size", $"must be at least 1, got {BatchSize}.");
        if (NumWorkers < 0) throw new ConfigurationException("num_workers", $"must be ≥ 0 (0 decodes on the caller's thread), got {NumWorkers}.");
        if (ImageSize <= 0) throw new ArgumentOutOfRangeException(nameof(ImageSize), ImageSize, "ImageSize must be positive.");
        if (PrefetchBatches <= 0) throw new ArgumentOutOfRangeException(nameof(PrefetchBatches), PrefetchBatches, "PrefetchBatches must be positive.");
        if (WorldSize <= 0) throw new ArgumentOutOfRangeException(nameof(WorldSize), WorldSize, "WorldSize must be positive.");
        if (StartBatch < 0) throw new ArgumentOutOfRangeException(nameof(StartBatch), StartBatch, "StartBatch must be 0 or more.");
        if (Rank < 0 || Rank >= WorldSize) throw new ArgumentOutOfRangeException(nameof(Rank), Rank, $"Rank must be in [0, {WorldSize}).");
    }
}
