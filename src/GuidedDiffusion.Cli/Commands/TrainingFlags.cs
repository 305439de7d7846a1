using System.CommandLine;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// The training flags of the original's classifier_train.py and image_train.py, plus ours: one flag table per section
/// of <see cref="TrainingConfig"/>, each shared by every command that takes the section. classifier-train takes them
/// all (<see cref="ClassifierTrain"/>); image-train takes those image_train.py has (<see cref="ImageTrain"/>), with its
/// length spelled by <see cref="ImageTrainLengthFlags"/> and the defaults of <see cref="TrainingConfig.ImageTrainDefaults"/>.
/// </summary>
internal static class TrainingFlags
{
    /// <summary>classifier-train's sections: all of them.</summary>
    public static IReadOnlyList<ITrainingSection> ClassifierTrain =>
        [Run.Section, Data.Section, Objective.Section, Length.Section, Optimizer.Section, Checkpoints.Section, Precision.Section, Validation.Section];

    /// <summary>image-train's sections: no classifier objective or validation, and its own length flags.</summary>
    public static IReadOnlyList<ITrainingSection> ImageTrain => [Run.Section, Data.Section, Optimizer.Section, Checkpoints.Section, Precision.Section];

    /// <summary>Adds the flags of <paramref name="sections"/> to <paramref name="command"/>, showing <paramref name="defaults"/>.</summary>
    public static TrainingFlagSet AddTo(Command command, TrainingConfig defaults, IReadOnlyList<ITrainingSection> sections) =>
        new(defaults, sections.Select(s => s.AddTo(command, defaults)).ToList());

    /// <summary>The run as a whole: seed, how t is drawn, the rank check.</summary>
    public static class Run
    {
        public static readonly TrainingSection<TrainingConfig> Section = new(t => t, (_, v) => v);
        public static readonly Flag<TrainingConfig> Seed = Section.Table.Add(SeedFlags.Seed, t => t.Seed, (t, v) => t with { Seed = v });
        public static readonly Flag<TrainingConfig> ScheduleSampler = Section.Table.Add<TimestepSamplerKind, string>("schedule_sampler", "Timestep sampler: uniform or loss-second-moment.",
            t => t.ScheduleSampler, (t, v) => t with { ScheduleSampler = v }, TimestepSamplerKinds.Parse, kind => kind.Spelling());
        public static readonly Flag<TrainingConfig> CheckRankSync = Section.Table.Add("check_rank_sync", "Verify after every step that all ranks hold identical parameters.",
            t => t.CheckRankSync, (t, v) => t with { CheckRankSync = v });
    }

    /// <summary>The data section (<see cref="DataOptions"/>): the data group's flags and the training augmentations.</summary>
    public static class Data
    {
        public static readonly TrainingSection<DataOptions> Section = new(t => t.Data, (t, v) => t with { Data = v });
        public static readonly Flag<DataOptions> DataDir = Section.Table.Add(DataFlags.DataDir, d => d.DataDir, (d, v) => d with { DataDir = v },
            help: "Training image folder (empty: the bundled Fashion-MNIST demo with a small model).");
        public static readonly Flag<DataOptions> LabelFrom = Section.Table.Add(DataFlags.LabelFrom, d => d.LabelFrom, (d, v) => d with { LabelFrom = v });
        public static readonly Flag<DataOptions> BatchSize = Section.Table.Add(DataFlags.BatchSize, d => d.BatchSize, (d, v) => d with { BatchSize = v });
        public static readonly Flag<DataOptions> NumWorkers = Section.Table.Add(DataFlags.NumWorkers, d => d.NumWorkers, (d, v) => d with { NumWorkers = v });
        public static readonly Flag<DataOptions> SkipBadImages = Section.Table.Add(DataFlags.SkipBadImages, d => d.SkipBadImages, (d, v) => d with { SkipBadImages = v });
        public static readonly Flag<DataOptions> RandomCrop = Section.Table.Add("random_crop", "Random-resized crops of training images (False: centre crop).",
            d => d.RandomCrop, (d, v) => d with { RandomCrop = v });
        public static readonly Flag<DataOptions> RandomFlip = Section.Table.Add("random_flip", "Random horizontal flips of training images.",
            d => d.RandomFlip, (d, v) => d with { RandomFlip = v });
        public static readonly Flag<DataOptions> Shuffle = Section.Table.Add("shuffle", "Reshuffle the training files every epoch (False: fixed file order).",
            d => d.Shuffle, (d, v) => d with { Shuffle = v });
    }

    /// <summary>classifier-train's objective: noised or clean images (the attack has <see cref="AttackFlags"/>).</summary>
    public static class Objective
    {
        public static readonly TrainingSection<ClassifierObjective> Section = new(t => t.Objective, (t, v) => t with { Objective = v });
        public static readonly Flag<ClassifierObjective> Noised = Section.Table.Add("noised", "Train on noised x_t (False: clean images at t = 0).",
            o => o.Noised, (o, v) => o with { Noised = v });
    }

    /// <summary>classifier-train's length; image-train spells its own with <see cref="ImageTrainLengthFlags"/>.</summary>
    public static class Length
    {
        /// <summary>The iteration count, declared once for both training commands (image-train's 0 means "no limit of its own").</summary>
        public static readonly SharedFlag IterationsFlag = new("iterations", "Optimizer updates.");

        public static readonly TrainingSection<TrainingLength> Section = new(t => t.Length, (t, v) => t with { Length = v });
        // classifier-train always has a count (image-train's "until stopped" is ImageTrainLengthFlags' 0).
        public static readonly Flag<TrainingLength> Iterations = Section.Table.Add<int?, int>(IterationsFlag, l => l.Iterations, (l, v) => l with { Iterations = v }, n => n, n => n ?? 0);
        public static readonly Flag<TrainingLength> AnnealLr = Section.Table.Add("anneal_lr", "Decay the learning rate linearly to 0.",
            l => l.AnnealLr, (l, v) => l with { AnnealLr = v });
    }

    /// <summary>The optimiser section (<see cref="OptimizerSettings"/>).</summary>
    public static class Optimizer
    {
        public static readonly TrainingSection<OptimizerSettings> Section = new(t => t.Optimizer, (t, v) => t with { Optimizer = v });
        public static readonly Flag<OptimizerSettings> Lr = Section.Table.Add("lr", "AdamW learning rate.",
            o => o.Lr, (o, v) => o with { Lr = v });
        public static readonly Flag<OptimizerSettings> WeightDecay = Section.Table.Add("weight_decay", "AdamW weight decay.",
            o => o.WeightDecay, (o, v) => o with { WeightDecay = v });
        public static readonly Flag<OptimizerSettings> Microbatch = Section.Table.Add<int?, int>("microbatch", "Split batches into chunks of this size (-1: no split); gradients are unchanged.",
            o => o.Microbatch, (o, v) => o with { Microbatch = v }, size => size == -1 ? null : size, size => size ?? -1);
        public static readonly Flag<OptimizerSettings> GradClip = Section.Table.Add("grad_clip", "Clip the global gradient norm (0: off).",
            o => o.GradClip, (o, v) => o with { GradClip = v });
        public static readonly Flag<OptimizerSettings> EmaRate = Section.Table.Add("ema_rate", "EMA decay rates, comma separated (e.g. 0.9999); each writes ema_RATE_NNNNNN.pt; empty: none.",
            o => o.EmaRate, (o, v) => o with { EmaRate = v });
    }

    /// <summary>The run folder section (<see cref="CheckpointSettings"/>).</summary>
    public static class Checkpoints
    {
        public static readonly TrainingSection<CheckpointSettings> Section = new(t => t.Checkpoints, (t, v) => t with { Checkpoints = v });
        public static readonly Flag<CheckpointSettings> LogDir = Section.Table.Add(OutputFlags.LogDir, c => c.LogDir, (c, v) => c with { LogDir = v },
            help: "Run folder (default: $OPENAI_LOGDIR, else runs/<timestamp>).");
        public static readonly Flag<CheckpointSettings> ResumeCheckpoint = Section.Table.Add("resume_checkpoint", "modelNNNNNN.pt to resume from, or 'auto' for the newest in --log_dir.",
            c => c.ResumeCheckpoint, (c, v) => c with { ResumeCheckpoint = v });
        public static readonly Flag<CheckpointSettings> LogInterval = Section.Table.Add("log_interval", "Steps between metric dumps.",
            c => c.LogInterval, (c, v) => c with { LogInterval = v });
        public static readonly Flag<CheckpointSettings> SaveInterval = Section.Table.Add("save_interval", "Steps between checkpoints.",
            c => c.SaveInterval, (c, v) => c with { SaveInterval = v });
        /// <summary>The demo replaces its own folder on a re-run; a folder the user named, or a resume, keeps the strict rule.</summary>
        public static readonly Flag<CheckpointSettings> Overwrite = Section.Table.Add("overwrite", "Start afresh in a non-empty --log_dir, moving its files into replaced-<time>/ there (default: refuse).",
            c => c.Overwrite, (c, v) => c with { Overwrite = v }).DemoOnlyWithout(LogDir, ResumeCheckpoint);
        public static readonly Flag<CheckpointSettings> AllowConfigMismatch = Section.Table.Add("allow_config_mismatch", "Resume even if the checkpoint's recorded architecture differs.",
            c => c.AllowConfigMismatch, (c, v) => c with { AllowConfigMismatch = v });
    }

    /// <summary>The precision section (<see cref="PrecisionSettings"/>).</summary>
    public static class Precision
    {
        public static readonly TrainingSection<PrecisionSettings> Section = new(t => t.Precision, (t, v) => t with { Precision = v });
        public static readonly Flag<PrecisionSettings> Mode = Section.Table.Add<TrainingPrecision, string>("precision", "fp32, fp16 (GPU; loss scaling; also --use_fp16 / --classifier_use_fp16 True), bf16 (trunk in bfloat16; needs AVX512-BF16/AMX) or auto (bf16 where native).",
            p => p.Mode, (p, v) => p with { Mode = v }, TrainingPrecisions.Parse, precision => precision.Spelling());
        public static readonly Flag<PrecisionSettings> AllowSlowBf16 = Section.Table.Add("allow_slow_bf16", "Train in bf16 even on a CPU without AVX512-BF16/AMX (10–200× slower; refused otherwise).",
            p => p.AllowSlowBf16, (p, v) => p with { AllowSlowBf16 = v });
        public static readonly Flag<PrecisionSettings> Fp16ScaleGrowth = Section.Table.Add("fp16_scale_growth", "fp16: lg_loss_scale increase per step without overflow.",
            p => p.Fp16ScaleGrowth, (p, v) => p with { Fp16ScaleGrowth = v });
    }

    /// <summary>classifier-train's validation section (<see cref="ValidationSettings"/>).</summary>
    public static class Validation
    {
        public static readonly TrainingSection<ValidationSettings> Section = new(t => t.Validation, (t, v) => t with { Validation = v });
        public static readonly Flag<ValidationSettings> ValDataDir = Section.Table.Add("val_data_dir", "Validation image folder, labelled with the training classes.",
            v => v.ValDataDir, (v, x) => v with { ValDataDir = x });
        public static readonly Flag<ValidationSettings> EvalInterval = Section.Table.Add("eval_interval", "Steps between validation batches.",
            v => v.EvalInterval, (v, x) => v with { EvalInterval = x });
        public static readonly Flag<ValidationSettings> FlipValidation = Section.Table.Add("flip_validation", "Randomly flip validation images (the original's behaviour).",
            v => v.FlipValidation, (v, x) => v with { FlipValidation = x });
        public static readonly Flag<ValidationSettings> EvalTable = Section.Table.Add("eval_table", "At the end, print accuracy per noise level on the whole validation set.",
            v => v.EvalTable, (v, x) => v with { EvalTable = x });
    }
}

/// <summary>A section of <see cref="TrainingConfig"/> on the command line, whatever its record type.</summary>
internal interface ITrainingSection
{
    /// <summary>Adds the section's flags to <paramref name="command"/> with the section of <paramref name="defaults"/>.</summary>
    ITrainingSectionFlags AddTo(Command command, TrainingConfig defaults);
}

/// <summary>A section's flags on one command.</summary>
internal interface ITrainingSectionFlags
{
    /// <summary><paramref name="config"/> with the section bound from <paramref name="parse"/>.</summary>
    TrainingConfig Bind(ParseResult parse, TrainingConfig config);

    /// <summary><paramref name="bound"/> with <paramref name="demo"/>'s values for this section's untyped flags.</summary>
    TrainingConfig WithDemo(ParseResult parse, TrainingConfig bound, TrainingConfig demo);
}

/// <summary>One section of <see cref="TrainingConfig"/>: its flag table, declared once, and where the section sits in the settings.</summary>
/// <param name="get">The section of a settings record.</param>
/// <param name="set">A copy of the settings with the section (<c>with</c>).</param>
internal sealed class TrainingSection<T>(Func<TrainingConfig, T> get, Func<TrainingConfig, T, TrainingConfig> set) : ITrainingSection
{
    /// <summary>The section's flags.</summary>
    public FlagTable<T> Table { get; } = new();

    public ITrainingSectionFlags AddTo(Command command, TrainingConfig defaults) => new OnCommand(Table.AddTo(command, get(defaults)), get, set);

    private sealed record OnCommand(FlagSet<T> Flags, Func<TrainingConfig, T> Get, Func<TrainingConfig, T, TrainingConfig> Set) : ITrainingSectionFlags
    {
        public TrainingConfig Bind(ParseResult parse, TrainingConfig config) => Set(config, Flags.Bind(parse, Get(config)));

        public TrainingConfig WithDemo(ParseResult parse, TrainingConfig bound, TrainingConfig demo) =>
            Set(bound, Flags.WithDemo(parse, Get(bound), Get(demo)));
    }
}

/// <summary>A training command's flags, section by section: binding into <see cref="TrainingConfig"/> and the demo's values for untyped flags.</summary>
/// <param name="defaults">The settings the untyped flags keep.</param>
/// <param name="sections">The command's sections.</param>
internal sealed class TrainingFlagSet(TrainingConfig defaults, IReadOnlyList<ITrainingSectionFlags> sections)
{
    /// <summary>The settings the untyped flags keep (and help shows).</summary>
    public TrainingConfig Defaults { get; } = defaults;

    /// <summary><see cref="Defaults"/> with every section's parsed values.</summary>
    /// <exception cref="ConfigurationException">A value its flag cannot spell.</exception>
    public TrainingConfig Bind(ParseResult parse) => sections.Aggregate(Defaults, (config, section) => section.Bind(parse, config));

    /// <summary><paramref name="bound"/> with <paramref name="demo"/>'s values for every flag the user did not type.</summary>
    public TrainingConfig WithDemo(ParseResult parse, TrainingConfig bound, TrainingConfig demo) =>
        sections.Aggregate(bound, (config, section) => section.WithDemo(parse, config, demo));
}

/// <summary>image-train's length: the original's <c>lr_anneal_steps</c> and our <c>iterations</c>, bound to <see cref="ImageTrainLength"/>.</summary>
internal static class ImageTrainLengthFlags
{
    public static readonly FlagTable<ImageTrainLength> Table = new();

    public static readonly Flag<ImageTrainLength> LrAnnealSteps = Table.Add("lr_anneal_steps", "Anneal lr linearly to 0 over this many updates and stop there (0: constant lr, train until stopped).",
        l => l.LrAnnealSteps, (l, v) => l with { LrAnnealSteps = v });
    /// <summary>The demo's step count only when the user did not choose annealing.</summary>
    public static readonly Flag<ImageTrainLength> Iterations = Table.Add(TrainingFlags.Length.IterationsFlag, l => l.Iterations, (l, v) => l with { Iterations = v },
        help: "Stop after this many updates without annealing (ours; 0: --lr_anneal_steps, or until stopped).").DemoOnlyWithout(LrAnnealSteps);
}

/// <summary>How a training command runs: device, data parallelism and the decoder's pixel limit.</summary>
internal static class RunFlags
{
    /// <summary>The settings of the process rather than of the job.</summary>
    public sealed record Settings
    {
        public string Device { get; init; } = "cpu";
        public string Distributed { get; init; } = GuidedDiffusion.Distributed.Communicators.Auto;
        public long MaxImagePixels { get; init; } = RunContext.DefaultMaxImagePixels;

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
