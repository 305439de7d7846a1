using System.Text.Json;
using System.Text.Json.Serialization;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Diffusion;

namespace GuidedDiffusion.Training;

/// <summary>
/// The training settings of the original's <c>classifier_train.py</c> and <c>image_train.py</c> (with
/// classifier_train.py's defaults; <see cref="ImageTrainDefaults"/> has image_train.py's) plus ours, in sections.
/// Architecture and diffusion settings live in their own records. The sidecar keeps the original's flat layout
/// (<see cref="TrainingSidecarJson"/>).
/// </summary>
[JsonConverter(typeof(TrainingSidecarJson))]
public sealed record TrainingConfig
{
    /// <summary>The settings a checkpoint's sidecar recorded (null when it recorded none).</summary>
    public static TrainingConfig? RecordedIn(CheckpointManifest manifest) =>
        manifest.Training?.Deserialize<TrainingConfig>(CheckpointManifest.JsonOptions);

    /// <summary><c>seed</c>: seeds weights, data order, timesteps and noise. Default 0.</summary>
    public int Seed { get; init; }

    /// <summary><c>schedule_sampler</c>: how t is drawn, uniform or loss-second-moment. Default uniform.</summary>
    public TimestepSamplerKind ScheduleSampler { get; init; } = TimestepSamplerKind.Uniform;

    /// <summary>
    /// <c>check_rank_sync</c>: after every step, compare a checksum of the parameters across ranks and stop
    /// with an error if they differ (a debugging aid for data-parallel runs). Default false.
    /// </summary>
    public bool CheckRankSync { get; init; }

    /// <summary>The training images and how they are batched (the run's image size, seed and rank are set where they are opened).</summary>
    public DataOptions Data { get; init; } = new();

    /// <summary>AdamW, microbatches, clipping and EMAs.</summary>
    public OptimizerSettings Optimizer { get; init; } = new();

    /// <summary>How many updates and whether the learning rate anneals.</summary>
    public TrainingLength Length { get; init; } = new();

    /// <summary>The run folder: logs, checkpoints, resuming.</summary>
    public CheckpointSettings Checkpoints { get; init; } = new();

    /// <summary>The trunk's number format and fp16's loss scaling.</summary>
    public PrecisionSettings Precision { get; init; } = new();

    /// <summary>Classifier training's validation set and end-of-run table (unused by image training).</summary>
    public ValidationSettings Validation { get; init; } = new();

    /// <summary>What a classifier learns from (unused by image training).</summary>
    public ClassifierObjective Objective { get; init; } = new();

    /// <summary>
    /// The defaults of the original's <c>image_train.py</c> (diffusion-model training): lr 1e-4, batch_size 1,
    /// ema_rate 0.9999, no random crop (its load_data default), the first loss scale 2^20, and no iteration limit
    /// (the original trains until stopped unless <c>lr_anneal_steps</c> is set); no validation table.
    /// </summary>
    public static TrainingConfig ImageTrainDefaults { get; } = new()
    {
        Data = DataOptions.ImageTrainDefaults,
        Optimizer = OptimizerSettings.ImageTrainDefaults,
        Length = TrainingLength.UntilStopped,
        Precision = PrecisionSettings.ImageTrainDefaults,
        Validation = new ValidationSettings { EvalTable = false },
    };

    /// <summary>The microbatch size actually used: the whole batch when <see cref="OptimizerSettings.Microbatch"/> is unset.</summary>
    public int EffectiveMicrobatch => Optimizer.Microbatch ?? Data.BatchSize;

    /// <summary>Rejects values that cannot work, naming the setting and what is allowed. Call before any work.</summary>
    /// <exception cref="ConfigurationException">A value out of range.</exception>
    public void Validate()
    {
        Length.Validate();
        Optimizer.Validate();
        Data.Validate();
        Checkpoints.Validate();
        Validation.Validate();
        Precision.Validate();
        Objective.Adversarial?.Validate();
    }
}
