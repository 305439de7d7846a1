using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// The loop flags of the original's classifier_train.py and image_train.py, plus ours, bound to
/// <see cref="TrainingConfig"/>. classifier-train shows them with <c>new TrainingConfig()</c>'s defaults,
/// image-train the ones image_train.py has, with <see cref="TrainingConfig.ImageTrainDefaults"/>.
/// </summary>
internal static class TrainingFlags
{
    public static readonly FlagTable<TrainingConfig> Table = new();

    public static readonly Flag<TrainingConfig> DataDir = Table.Add("data_dir", "Training image folder (empty: the bundled Fashion-MNIST demo with a small model).",
        t => t.DataDir, (t, v) => t with { DataDir = v });
    public static readonly Flag<TrainingConfig> ValDataDir = Table.Add("val_data_dir", "Validation image folder, labelled with the training classes.",
        t => t.ValDataDir, (t, v) => t with { ValDataDir = v });
    public static readonly Flag<TrainingConfig> Noised = Table.Add("noised", "Train on noised x_t (False: clean images at t = 0).",
        t => t.Noised, (t, v) => t with { Noised = v });
    // classifier-train always has a count (image-train's "until stopped" is ImageTrainLengthFlags' 0).
    public static readonly Flag<TrainingConfig> Iterations = Table.Add<int?, int>("iterations", "Optimizer updates.",
        t => t.Iterations, (t, v) => t with { Iterations = v }, n => n, n => n ?? 0);
    public static readonly Flag<TrainingConfig> Lr = Table.Add("lr", "AdamW learning rate.",
        t => t.Lr, (t, v) => t with { Lr = v });
    public static readonly Flag<TrainingConfig> WeightDecay = Table.Add("weight_decay", "AdamW weight decay.",
        t => t.WeightDecay, (t, v) => t with { WeightDecay = v });
    public static readonly Flag<TrainingConfig> AnnealLr = Table.Add("anneal_lr", "Decay the learning rate linearly to 0.",
        t => t.AnnealLr, (t, v) => t with { AnnealLr = v });
    public static readonly Flag<TrainingConfig> BatchSize = Table.Add("batch_size", "Images per step and per process.",
        t => t.BatchSize, (t, v) => t with { BatchSize = v });
    public static readonly Flag<TrainingConfig> Microbatch = Table.Add<int?, int>("microbatch", "Split batches into chunks of this size (-1: no split); gradients are unchanged.",
        t => t.Microbatch, (t, v) => t with { Microbatch = v }, size => size == -1 ? null : size, size => size ?? -1);
    public static readonly Flag<TrainingConfig> ScheduleSampler = Table.Add<TimestepSamplerKind, string>("schedule_sampler", "Timestep sampler: uniform or loss-second-moment.",
        t => t.ScheduleSampler, (t, v) => t with { ScheduleSampler = v }, TimestepSampler.Parse, kind => kind.Spelling());
    public static readonly Flag<TrainingConfig> ResumeCheckpoint = Table.Add("resume_checkpoint", "modelNNNNNN.pt to resume from, or 'auto' for the newest in --log_dir.",
        t => t.ResumeCheckpoint, (t, v) => t with { ResumeCheckpoint = v });
    public static readonly Flag<TrainingConfig> LogInterval = Table.Add("log_interval", "Steps between metric dumps.",
        t => t.LogInterval, (t, v) => t with { LogInterval = v });
    public static readonly Flag<TrainingConfig> EvalInterval = Table.Add("eval_interval", "Steps between validation batches.",
        t => t.EvalInterval, (t, v) => t with { EvalInterval = v });
    public static readonly Flag<TrainingConfig> SaveInterval = Table.Add("save_interval", "Steps between checkpoints.",
        t => t.SaveInterval, (t, v) => t with { SaveInterval = v });
    public static readonly Flag<TrainingConfig> Fp16ScaleGrowth = Table.Add("fp16_scale_growth", "fp16: lg_loss_scale increase per step without overflow.",
        t => t.Fp16ScaleGrowth, (t, v) => t with { Fp16ScaleGrowth = v });
    public static readonly Flag<TrainingConfig> LogDir = Table.Add("log_dir", "Run folder (default: $OPENAI_LOGDIR, else runs/<timestamp>).",
        t => t.LogDir, (t, v) => t with { LogDir = v });
    /// <summary>The demo replaces its own folder on a re-run; a folder the user named, or a resume, keeps the strict rule.</summary>
    public static readonly Flag<TrainingConfig> Overwrite = Table.Add("overwrite", "Start afresh in a non-empty --log_dir, moving its files into replaced-<time>/ there (default: refuse).",
        t => t.Overwrite, (t, v) => t with { Overwrite = v }).DemoOnlyWithout(LogDir, ResumeCheckpoint);
    public static readonly Flag<TrainingConfig> Seed = Table.Add("seed", "Seed for weights, data order, timesteps and noise.",
        t => t.Seed, (t, v) => t with { Seed = v });
    public static readonly Flag<TrainingConfig> LabelFrom = Table.Add<LabelRule, string>("label_from", "Class of an image: prefix (file name before '_', the original) or folder.",
        t => t.LabelFrom, (t, v) => t with { LabelFrom = v }, LabelRules.Parse, rule => rule.Spelling());
    public static readonly Flag<TrainingConfig> NumWorkers = Table.Add("num_workers", "Image decoding threads (0: on the training thread).",
        t => t.NumWorkers, (t, v) => t with { NumWorkers = v });
    public static readonly Flag<TrainingConfig> Precision = Table.Add<TrainingPrecision, string>("precision", "fp32, fp16 (GPU; loss scaling; also --use_fp16 / --classifier_use_fp16 True), bf16 (trunk in bfloat16; needs AVX512-BF16/AMX) or auto (bf16 where native).",
        t => t.Precision, (t, v) => t with { Precision = v }, TrainingPrecisions.Parse, precision => precision.Spelling());
    public static readonly Flag<TrainingConfig> AllowSlowBf16 = Table.Add("allow_slow_bf16", "Train in bf16 even on a CPU without AVX512-BF16/AMX (10–200× slower; refused otherwise).",
        t => t.AllowSlowBf16, (t, v) => t with { AllowSlowBf16 = v });
    public static readonly Flag<TrainingConfig> EmaRate = Table.Add("ema_rate", "EMA decay rates, comma separated (e.g. 0.9999); each writes ema_RATE_NNNNNN.pt; empty: none.",
        t => t.EmaRate, (t, v) => t with { EmaRate = v });
    public static readonly Flag<TrainingConfig> GradClip = Table.Add("grad_clip", "Clip the global gradient norm (0: off).",
        t => t.GradClip, (t, v) => t with { GradClip = v });
    public static readonly Flag<TrainingConfig> SkipBadImages = Table.Add("skip_bad_images", "Skip and count unreadable images instead of failing.",
        t => t.SkipBadImages, (t, v) => t with { SkipBadImages = v });
    public static readonly Flag<TrainingConfig> FlipValidation = Table.Add("flip_validation", "Randomly flip validation images (the original's behaviour).",
        t => t.FlipValidation, (t, v) => t with { FlipValidation = v });
    public static readonly Flag<TrainingConfig> AllowConfigMismatch = Table.Add("allow_config_mismatch", "Resume even if the checkpoint's recorded architecture differs.",
        t => t.AllowConfigMismatch, (t, v) => t with { AllowConfigMismatch = v });
    public static readonly Flag<TrainingConfig> RandomCrop = Table.Add("random_crop", "Random-resized crops of training images (False: centre crop).",
        t => t.RandomCrop, (t, v) => t with { RandomCrop = v });
    public static readonly Flag<TrainingConfig> RandomFlip = Table.Add("random_flip", "Random horizontal flips of training images.",
        t => t.RandomFlip, (t, v) => t with { RandomFlip = v });
    public static readonly Flag<TrainingConfig> Shuffle = Table.Add("shuffle", "Reshuffle the training files every epoch (False: fixed file order).",
        t => t.Shuffle, (t, v) => t with { Shuffle = v });
    public static readonly Flag<TrainingConfig> EvalTable = Table.Add("eval_table", "At the end, print accuracy per noise level on the whole validation set.",
        t => t.EvalTable, (t, v) => t with { EvalTable = v });
    public static readonly Flag<TrainingConfig> CheckRankSync = Table.Add("check_rank_sync", "Verify after every step that all ranks hold identical parameters.",
        t => t.CheckRankSync, (t, v) => t with { CheckRankSync = v });

    /// <summary>classifier-train's loop flags: all but image_train.py's fp16_scale_growth.</summary>
    public static bool OfClassifierTrain(Flag<TrainingConfig> flag) => flag != Fp16ScaleGrowth;

    /// <summary>
    /// image-train's: image_train.py's loop flags and ours that apply to it. Its length is
    /// <see cref="ImageTrainLengthFlags"/>' (lr_anneal_steps or iterations); it has no validation set or end-of-run table.
    /// </summary>
    public static bool OfImageTrain(Flag<TrainingConfig> flag) =>
        !new[] { ValDataDir, Noised, Iterations, AnnealLr, EvalInterval, SkipBadImages, FlipValidation, RandomCrop, Shuffle, EvalTable, CheckRankSync }.Contains(flag);
}

/// <summary>image-train's length: the original's <c>lr_anneal_steps</c> and our <c>iterations</c>, bound to <see cref="ImageTrainLength"/>.</summary>
internal static class ImageTrainLengthFlags
{
    public static readonly FlagTable<ImageTrainLength> Table = new();

    public static readonly Flag<ImageTrainLength> LrAnnealSteps = Table.Add("lr_anneal_steps", "Anneal lr linearly to 0 over this many updates and stop there (0: constant lr, train until stopped).",
        l => l.LrAnnealSteps, (l, v) => l with { LrAnnealSteps = v });
    /// <summary>The demo's step count only when the user did not choose annealing.</summary>
    public static readonly Flag<ImageTrainLength> Iterations = Table.Add("iterations", "Stop after this many updates without annealing (ours; 0: --lr_anneal_steps, or until stopped).",
        l => l.Iterations, (l, v) => l with { Iterations = v }).DemoOnlyWithout(LrAnnealSteps);
}

/// <summary>How a training command runs: device, data parallelism and the decoder's pixel limit.</summary>
internal static class RunFlags
{
    /// <summary>The settings of the process rather than of the job.</summary>
    public sealed record Settings
    {
        public string Device { get; init; } = "cpu";
        public string Distributed { get; init; } = GuidedDiffusion.Distributed.Communicators.Auto;
        public long MaxImagePixels { get; init; } = GuidedDiffusion.Data.Decoding.ImageDecoder.DefaultMaxImagePixels;

        /// <summary>Checks the device and sets the decoder's limit (the process-wide settings) before any work;
        /// returns the device to train on.</summary>
        /// <exception cref="ConfigurationException">An unusable device or a limit that is not a positive count.</exception>
        public TorchSharp.torch.Device Apply()
        {
            var device = ComputeOn();
            GuidedDiffusion.Data.Decoding.ImageDecoder.MaxImagePixels = MaxImagePixels > 0 ? MaxImagePixels
                : throw new ConfigurationException("max_image_pixels", $"must be a positive pixel count, got {MaxImagePixels}.");
            return device;
        }

        /// <summary>The device to compute on.</summary>
        /// <exception cref="ConfigurationException">An unknown device, or one this build or machine cannot use.</exception>
        public TorchSharp.torch.Device ComputeOn() => ComputeDevice.Parse(Device);
    }

    public static readonly FlagTable<Settings> Table = new();

    /// <summary>Only <c>--device</c>, for the sampling and evaluation commands (one process, the decoder's default limit).</summary>
    public static FlagSet<Settings> AddDeviceTo(System.CommandLine.Command command) => Table.AddTo(command, new Settings(), flag => flag == Device);

    public static readonly Flag<Settings> Device = Table.Add("device", "cpu or cuda (cuda needs the CUDA build: see README).",
        s => s.Device, (s, v) => s with { Device = v });
    public static readonly Flag<Settings> Distributed = Table.Add("distributed", "Data parallelism: auto (MPI when launched by mpiexec/mpirun), none, or mpi.",
        s => s.Distributed, (s, v) => s with { Distributed = v });
    public static readonly Flag<Settings> MaxImagePixels = Table.Add("max_image_pixels", "Decompression-bomb limit (PIL's MAX_IMAGE_PIXELS): warn above it, refuse an image above twice it.",
        s => s.MaxImagePixels, (s, v) => s with { MaxImagePixels = v });
}
