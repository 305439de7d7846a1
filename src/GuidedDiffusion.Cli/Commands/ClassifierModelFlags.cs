using System.CommandLine;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// The classifier flags of the original's <c>classifier_defaults()</c>, plus ours (channel_mult,
/// num_head_channels, num_classes), bound to <see cref="ClassifierConfig"/>.
/// </summary>
internal static class ClassifierModelFlags
{
    public static readonly FlagTable<ClassifierConfig> Table = new();

    public static readonly Flag<ClassifierConfig> ImageSize = Table.Add(ModelShapeFlags.ImageSize, c => c.ImageSize, (c, v) => c with { ImageSize = v });
    public static readonly Flag<ClassifierConfig> UseFp16 = Table.Add("classifier_use_fp16", "Classifier trunk in float16 (GPU only): training keeps float32 masters with dynamic loss scaling (= --precision fp16); sampling ignores it on CPU with a warning.",
        c => c.UseFp16, (c, v) => c with { UseFp16 = v });
    public static readonly Flag<ClassifierConfig> Width = Table.Add("classifier_width", "Classifier base channel count.",
        c => c.Width, (c, v) => c with { Width = v });
    public static readonly Flag<ClassifierConfig> Depth = Table.Add("classifier_depth", "Classifier ResBlocks per resolution level.",
        c => c.Depth, (c, v) => c with { Depth = v });
    public static readonly Flag<ClassifierConfig> AttentionResolutions = Table.Add<SettingList<int>, string>("classifier_attention_resolutions", "Classifier resolutions with attention blocks, comma separated.",
        c => c.AttentionResolutions, (c, v) => c with { AttentionResolutions = v }, text => SettingList<int>.Parse(text, "classifier_attention_resolutions"), v => v.ToString());
    public static readonly Flag<ClassifierConfig> ScaleShift = Table.Add("classifier_use_scale_shift_norm", "Classifier timestep embedding as GroupNorm scale and shift (FiLM).",
        c => c.UseScaleShiftNorm, (c, v) => c with { UseScaleShiftNorm = v });
    public static readonly Flag<ClassifierConfig> ResblockUpdown = Table.Add("classifier_resblock_updown", "Classifier down-samples with ResBlocks instead of strided convolutions.",
        c => c.ResblockUpdown, (c, v) => c with { ResblockUpdown = v });
    public static readonly Flag<ClassifierConfig> Pool = Table.Add<ClassifierPool, string>("classifier_pool", "Classifier output head: adaptive, attention, spatial or spatial_v2.",
        c => c.Pool, (c, v) => c with { Pool = v }, text => ClassifierPools.Parse(text), pool => pool.ToFlag());
    public static readonly Flag<ClassifierConfig> ChannelMult = Table.Add<SettingList<double>?, string>("channel_mult", "Classifier channel multiplier per level, comma separated (default: the original's for the image size).",
        c => c.ChannelMult, (c, v) => c with { ChannelMult = v }, text => ChannelMultFlag.Parse(text, ClassifierConfig.SettingNames.ChannelMult), ChannelMultFlag.Spell,
        setting: ClassifierConfig.SettingNames.ChannelMult);
    public static readonly Flag<ClassifierConfig> NumHeadChannels = Table.Add("num_head_channels", "Classifier channels per attention head (the original: 64).",
        c => c.NumHeadChannels, (c, v) => c with { NumHeadChannels = v }, setting: ClassifierConfig.SettingNames.NumHeadChannels);
    public static readonly Flag<ClassifierConfig> NumClasses = Table.Add<int?, int>("num_classes", "Classifier outputs (0: the number of classes in the data, or the checkpoint's; the released ImageNet classifiers have 1000).",
        c => c.NumClasses, (c, v) => c with { NumClasses = v }, n => n == 0 ? null : n, n => n ?? 0, setting: ClassifierConfig.SettingNames.OutChannels);
    public static readonly Flag<ClassifierConfig> Dropout = Table.Add(ModelShapeFlags.Dropout, c => c.Dropout, (c, v) => c with { Dropout = v });
    public static readonly Flag<ClassifierConfig> UseCheckpoint = Table.Add("classifier_use_checkpoint", "Gradient checkpointing in training: ResBlocks and attention are recomputed in the backward instead of keeping their activations (less memory, ~1 more forward of time; same results).",
        c => c.UseCheckpoint, (c, v) => c with { UseCheckpoint = v });

    /// <summary>The command line's classifier defaults: the original's, with the class count left to the data or checkpoint (spelled 0).</summary>
    public static ClassifierConfig Defaults { get; } = new() { NumClasses = null };

    /// <summary>The classifier flags and the noise-process flags of a command that trains or loads a classifier on its own.</summary>
    public sealed record Bound(FlagSet<ClassifierConfig> Classifier, FlagSet<DiffusionConfig> Diffusion)
    {
        /// <summary>The architecture settings typed (a sidecar must agree with each).</summary>
        public IReadOnlySet<string> ArchitectureGiven(ParseResult parse) => ClassifierModelFlags.ArchitectureGiven(Classifier, parse);
    }

    /// <summary>The architecture settings of <paramref name="flags"/> typed (precision, dropout and checkpointing describe training, not the weights).</summary>
    public static IReadOnlySet<string> ArchitectureGiven(FlagSet<ClassifierConfig> flags, ParseResult parse) => flags.GivenSettings(parse, UseFp16, Dropout, UseCheckpoint);

    /// <summary>Adds the classifier and diffusion flags to a command that trains or loads a classifier on its own.</summary>
    public static Bound AddTo(Command command) =>
        new(Table.AddTo(command, Defaults), DiffusionFlags.Table.AddTo(command, new DiffusionConfig()));

    /// <summary>
    /// The classifier flags of classifier-sample, beside a diffusion model's: the names the model's flags already
    /// use (channel_mult, num_head_channels, num_classes) get a <c>classifier_</c> prefix, and image_size, dropout and
    /// the noise process are the model's.
    /// </summary>
    public static FlagSet<ClassifierConfig> AddBesideDiffusionModel(Command command) =>
        Table.AddTo(command, Defaults, include: f => f != ImageSize && f != Dropout && f != UseCheckpoint,
            rename: f => f == ChannelMult || f == NumHeadChannels || f == NumClasses ? "classifier_" + f.Name : null);
}

/// <summary>The <c>model_path</c> of a command that loads a classifier checkpoint, bound to <see cref="ClassifierSource"/>.</summary>
internal static class ClassifierSourceFlags
{
    public static readonly FlagTable<ClassifierSource> Table = new();

    public static readonly Flag<ClassifierSource> ModelPath = Table.Add("model_path", "Classifier checkpoint (.pt or .safetensors); its JSON sidecar, if any, supplies the architecture and diffusion.",
        s => s.Path, (s, v) => s with { Path = v }, setting: "classifier_path");

    /// <summary>The checkpoint flag with the architecture flags that describe a checkpoint without a sidecar.</summary>
    public sealed record Bound(FlagSet<ClassifierSource> Source, ClassifierModelFlags.Bound Model)
    {
        public ClassifierSource Bind(ParseResult parse) => Source.Bind(parse) with
        {
            Architecture = Model.Classifier.Bind(parse),
            ArchitectureGiven = Model.ArchitectureGiven(parse),
            Diffusion = Model.Diffusion.Bind(parse),
        };
    }

    /// <summary>Adds model_path and the classifier and diffusion flags.</summary>
    public static Bound AddTo(Command command) => new(Table.AddTo(command, new ClassifierSource()), ClassifierModelFlags.AddTo(command));
}
