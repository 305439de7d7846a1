namespace GuidedDiffusion.Data.Loading;

/// <summary>
/// Options of the batch loader. Defaults follow the original classifier trainer where it has one
/// (image size 64, batch 4, random crop and flip for training data); the rest are ours.
/// </summary>
public sealed record DataOptions
{
    /// <summary>Side S of the square images produced. Default 64.</summary>
    public int ImageSize { get; init; } = 64;

    /// <summary>Images per batch on this rank. Default 4.</summary>
    public int BatchSize { get; init; } = 4;

    /// <summary>Random-resized crop (short side drawn from [S, ⌈S/0.8⌉]) instead of the centre crop. Default true (training).</summary>
    public bool RandomCrop { get; init; } = true;

    /// <summary>Mirror each image left–right with probability 0.5. Default true (training).</summary>
    public bool RandomFlip { get; init; } = true;

    /// <summary>
    /// Whether <see cref="ForValidation"/> keeps random flips. The original flips validation images too;
    /// default false so that evaluation is repeatable.
    /// </summary>
    public bool FlipValidation { get; init; }

    /// <summary>Reshuffle this rank's files every epoch (from <see cref="Seed"/> and the epoch number). Default true.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Drop the last incomplete batch of each epoch (the original's drop_last=True). Default true.</summary>
    public bool DropLast { get; init; } = true;

    /// <summary>Threads that decode and augment; 0 decodes on the caller's thread. Default: one per processor.</summary>
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

    /// <summary>Skip (and count) images that fail to decode instead of failing. Default false.</summary>
    public bool SkipBadImages { get; init; }

    /// <summary>Options for validation data: centre crop, flipped only if <see cref="FlipValidation"/>.</summary>
    public DataOptions ForValidation() => this with { RandomCrop = false, RandomFlip = FlipValidation };

    /// <summary>
    /// No random augmentation at all (centre crop, no flip): the batch content then depends only on the
    /// file order, which distributed-equivalence tests need. Combine with <c>Shuffle = false</c> for a fixed order.
    /// </summary>
    public DataOptions WithoutAugmentation() => this with { RandomCrop = false, RandomFlip = false };

    /// <summary>Throws when an option is out of range, naming it.</summary>
    public void Validate()
    {
        if (ImageSize <= 0) throw new ArgumentOutOfRangeException(nameof(ImageSize), ImageSize, "ImageSize must be positive.");
        if (BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be positive.");
        if (NumWorkers < 0) throw new ArgumentOutOfRangeException(nameof(NumWorkers), NumWorkers, "NumWorkers must be 0 (inline) or more.");
        if (PrefetchBatches <= 0) throw new ArgumentOutOfRangeException(nameof(PrefetchBatches), PrefetchBatches, "PrefetchBatches must be positive.");
        if (WorldSize <= 0) throw new ArgumentOutOfRangeException(nameof(WorldSize), WorldSize, "WorldSize must be positive.");
        if (StartBatch < 0) throw new ArgumentOutOfRangeException(nameof(StartBatch), StartBatch, "StartBatch must be 0 or more.");
        if (Rank < 0 || Rank >= WorldSize) throw new ArgumentOutOfRangeException(nameof(Rank), Rank, $"Rank must be in [0, {WorldSize}).");
    }
}
