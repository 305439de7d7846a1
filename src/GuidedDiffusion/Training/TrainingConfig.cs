using System.Text.Json;
using System.Text.Json.Serialization;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Adversarial;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data.Sources;

namespace GuidedDiffusion.Training;

/// <summary>
/// The loop flags of the original's <c>classifier_train.py</c> (with its defaults) plus ours. Architecture
/// and diffusion flags live in their own records; the CLI binds each flag to one property here.
/// </summary>
public sealed record TrainingConfig
{
    /// <summary>The loop settings a checkpoint's sidecar recorded (null when it recorded none).</summary>
    public static TrainingConfig? RecordedIn(CheckpointManifest manifest) =>
        manifest.Training?.Deserialize<TrainingConfig>(CheckpointManifest.JsonOptions);

    /// <summary><c>--data_dir</c>: training images. Empty: the bundled Fashion-MNIST demo.</summary>
    public string DataDir { get; init; } = "";
    /// <summary><c>--val_data_dir</c>: validation images; empty disables validation (as the original).</summary>
    public string ValDataDir { get; init; } = "";
    /// <summary><c>--noised</c>: train on x_t with sampled t (true) or on clean images at t = 0. Default true.</summary>
    public bool Noised { get; init; } = true;
    /// <summary><c>--iterations</c>: optimizer updates in the run; null: until stopped (image-train without a length). Default 150000.</summary>
    public int? Iterations { get; init; } = 150000;
    /// <summary><c>--lr</c>: AdamW learning rate. Default 3e-4.</summary>
    public double Lr { get; init; } = 3e-4;
    /// <summary><c>--weight_decay</c>: AdamW decoupled weight decay. Default 0.</summary>
    public double WeightDecay { get; init; }
    /// <summary><c>--anneal_lr</c>: decay lr linearly to 0 over the iterations. Default false.</summary>
    public bool AnnealLr { get; init; }
    /// <summary><c>--batch_size</c>: images per step and per rank. Default 4.</summary>
    public int BatchSize { get; init; } = 4;
    /// <summary><c>--microbatch</c>: split each batch into chunks of this size; null (−1 on the command line and in the sidecar, as the original): no split. Default null.</summary>
    [JsonConverter(typeof(UnsetAsMinusOne))]
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public int? Microbatch { get; init; }
    /// <summary><c>--schedule_sampler</c>: uniform or loss-second-moment. Default uniform.</summary>
    public TimestepSamplerKind ScheduleSampler { get; init; } = TimestepSamplerKind.Uniform;
    /// <summary><c>--resume_checkpoint</c>: modelNNNNNN.pt to resume from, or <c>auto</c> for the newest in log_dir.</summary>
    public string ResumeCheckpoint { get; init; } = "";
    /// <summary><c>--log_interval</c>: steps between metric dumps. Default 10.</summary>
    public int LogInterval { get; init; } = 10;
    /// <summary><c>--eval_interval</c>: steps between validation batches. Default 5.</summary>
    public int EvalInterval { get; init; } = 5;
    /// <summary><c>--save_interval</c>: steps between checkpoints. Default 10000.</summary>
    public int SaveInterval { get; init; } = 10000;
    /// <summary><c>--log_dir</c>: output folder; else OPENAI_LOGDIR, else runs/&lt;timestamp&gt;.</summary>
    public string LogDir { get; init; } = "";
    /// <summary><c>--seed</c>: seeds weights, data order, timesteps and noise. Default 0.</summary>
    public int Seed { get; init; }
    /// <summary><c>--precision</c>: fp32, fp16 (dynamic loss scaling), bf16 (trunk in bfloat16) or auto (bf16 where the CPU has native bf16). Default fp32.</summary>
    public TrainingPrecision Precision { get; init; } = TrainingPrecision.Fp32;
    /// <summary><c>--allow_slow_bf16</c>: train in bf16 even on a CPU without native bf16 kernels (refused otherwise). Default false.</summary>
    public bool AllowSlowBf16 { get; init; }
    /// <summary><c>--ema_rate</c>: exponential moving average of weights (e.g. 0.9999); empty: none.</summary>
    public string EmaRate { get; init; } = "";
    /// <summary><c>--grad_clip</c>: clip the global gradient norm to this value; 0: no clipping.</summary>
    public double GradClip { get; init; }
    /// <summary><c>--fp16_scale_growth</c>: lg_loss_scale increase per fp16 step without overflow. Default 1e-3.</summary>
    public double Fp16ScaleGrowth { get; init; } = DynamicLossScaler.DefaultGrowth;
    /// <summary>log2 of the first fp16 loss scale: 16 in classifier_train.py, 20 in image_train.py (fp16_util's default).</summary>
    public double InitialLgLossScale { get; init; } = DynamicLossScaler.InitialLgLossScale;
    /// <summary><c>--allow_config_mismatch</c>: resume even if the checkpoint's recorded config differs.</summary>
    public bool AllowConfigMismatch { get; init; }
    /// <summary><c>--eval_table</c>: print accuracy per noise level on the validation set at the end. Default true.</summary>
    public bool EvalTable { get; init; } = true;

    /// <summary><c>--label_from</c>: class from the file-name <c>prefix</c> before '_' (the original) or the <c>folder</c>.</summary>
    public LabelRule LabelFrom { get; init; } = LabelRule.Prefix;
    /// <summary><c>--num_workers</c>: image decoding threads; 0 decodes inline. Default: one per core.</summary>
    public int NumWorkers { get; init; } = Environment.ProcessorCount;
    /// <summary><c>--skip_bad_images</c>: skip and count unreadable images instead of failing. Default false.</summary>
    public bool SkipBadImages { get; init; }
    /// <summary>
    /// <c>--overwrite</c>: a fresh run into a non-empty <c>--log_dir</c> moves the folder's files into
    /// <c>replaced-&lt;time&gt;/</c> inside it instead of refusing to start. Default false.
    /// </summary>
    public bool Overwrite { get; init; }
    /// <summary><c>--flip_validation</c>: flip validation images at random, as the original does. Default false.</summary>
    public bool FlipValidation { get; init; }

    /// <summary>Random-resized crops of training images (the original's random_crop). Default true.</summary>
    public bool RandomCrop { get; init; } = true;
    /// <summary>Random horizontal flips of training images. Default true.</summary>
    public bool RandomFlip { get; init; } = true;
    /// <summary>Reshuffle the training files every epoch. Default true.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>
    /// <c>--check_rank_sync</c>: after every step, compare a checksum of the parameters across ranks and stop
    /// with an error if they differ (a debugging aid for data-parallel runs). Default false.
    /// </summary>
    public bool CheckRankSync { get; init; }

    /// <summary>
    /// <c>--adversarial True</c> with its <c>--attack_*</c> flags: train on untargeted L2 PGD attacks of x_t
    /// (Kawar, Ganz and Elad's robust noisy classifiers). Null (default): plain training.
    /// </summary>
    public L2PgdOptions? Adversarial { get; init; }

    /// <summary>
    /// The loop defaults of the original's <c>image_train.py</c> (diffusion-model training): lr 1e-4, batch_size 1,
    /// ema_rate 0.9999, no random crop (its load_data default), and no iteration limit (the original trains until
    /// stopped unless <c>lr_anneal_steps</c> is set).
    /// </summary>
    public static TrainingConfig ImageTrainDefaults { get; } = new()
    {
        Lr = 1e-4,
        BatchSize = 1,
        EmaRate = "0.9999",
        Iterations = null,
        InitialLgLossScale = 20.0,
        RandomCrop = false,
        EvalTable = false,
    };


    /// <summary>Precisions <c>--precision</c> accepts.</summary>
    public static IReadOnlyList<string> Precisions => TrainingPrecisions.Names;

    /// <summary>The microbatch size actually used: the whole batch when the flag is −1.</summary>
    public int EffectiveMicrobatch => Microbatch ?? BatchSize;

    /// <summary>EMA rates parsed from <see cref="EmaRate"/> (comma separated, as the original's image trainer).</summary>
    public double[] EmaRates => string.IsNullOrWhiteSpace(EmaRate)
        ? Array.Empty<double>()
        : EmaRate.Split(',').Select(r => double.Parse(r, System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    /// <summary>Rejects values that cannot work, naming the flag and what is allowed. Call before any work.</summary>
    public void Validate()
    {
        if (Iterations < 1) throw new ConfigurationException("iterations", $"must be at least 1, got {Iterations}.");
        if (AnnealLr && Iterations is null) throw new ConfigurationException("anneal_lr", $"annealing needs {SettingText.Ref("iterations")}: the learning rate reaches 0 there.");
        if (!(Lr > 0) || double.IsInfinity(Lr)) throw new ConfigurationException("lr", $"must be a positive number, got {Lr}.");
        if (WeightDecay < 0) throw new ConfigurationException("weight_decay", $"must be ≥ 0, got {WeightDecay}.");
        if (BatchSize < 1) throw new ConfigurationException("batch_size", $"must be at least 1, got {BatchSize}.");
        // A microbatch of at least the batch size means no split, as in the original (its range() yields one chunk).
        if (Microbatch < 1) throw new ConfigurationException("microbatch", $"must be -1 (no split) or at least 1, got {Microbatch}.");
        if (LogInterval < 1) throw new ConfigurationException("log_interval", $"must be at least 1, got {LogInterval}.");
        if (EvalInterval < 1) throw new ConfigurationException("eval_interval", $"must be at least 1, got {EvalInterval}.");
        if (SaveInterval < 1) throw new ConfigurationException("save_interval", $"must be at least 1, got {SaveInterval}.");
        if (NumWorkers < 0) throw new ConfigurationException("num_workers", $"must be ≥ 0 (0 decodes on the training thread), got {NumWorkers}.");
        if (!(Fp16ScaleGrowth >= 0) || double.IsInfinity(Fp16ScaleGrowth)) throw new ConfigurationException("fp16_scale_growth", $"must be a finite number ≥ 0, got {Fp16ScaleGrowth}.");
        if (GradClip < 0) throw new ConfigurationException("grad_clip", $"must be ≥ 0 (0 disables clipping), got {GradClip}.");
        double[] rates;
        try { rates = EmaRates; }
        catch (FormatException) { throw new ConfigurationException("ema_rate", $"'{EmaRate}' is not a comma-separated list of numbers such as 0.9999."); }
        foreach (var r in rates)
            if (!(r > 0 && r < 1)) throw new ConfigurationException("ema_rate", $"each rate must lie in (0, 1), got {r}.");
        Adversarial?.Validate();
    }

    /// <summary>The sidecar spelling of an unset count: −1, as the original's flag (old sidecars hold −1, new ones too).</summary>
    private sealed class UnsetAsMinusOne : JsonConverter<int?>
    {
        public override bool HandleNull => true;

        public override int? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType == JsonTokenType.Null ? null : reader.GetInt32() is var value && value == -1 ? null : value;

        public override void Write(Utf8JsonWriter writer, int? value, JsonSerializerOptions options) => writer.WriteNumberValue(value ?? -1);
    }
}
