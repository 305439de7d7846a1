using System.CommandLine;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// The classifier and diffusion flags of the original's <c>classifier_and_diffusion_defaults()</c>, plus ours
/// (channel_mult, num_head_channels, num_classes), bound to <see cref="ClassifierConfig"/> and <see cref="DiffusionConfig"/>.
/// </summary>
internal sealed class ClassifierModelFlags
{
    private static readonly ClassifierConfig C = new();

    /// <summary>The classifier flags of a command that trains or loads a classifier on its own.</summary>
    public ClassifierModelFlags() : this(besideDiffusionModel: false) { }

    /// <summary>
    /// With <paramref name="besideDiffusionModel"/> (classifier-sample), the flags whose names the diffusion model's
    /// flags already use (channel_mult, num_head_channels, num_classes) get a <c>classifier_</c> prefix, and
    /// image_size, dropout and the noise-process flags are left to the diffusion model's flags.
    /// </summary>
    public ClassifierModelFlags(bool besideDiffusionModel)
    {
        _besideDiffusionModel = besideDiffusionModel;
        string prefix = besideDiffusionModel ? "classifier_" : "";
        UseFp16 = Flags.Create("classifier_use_fp16", C.UseFp16, besideDiffusionModel
            ? "Classifier trunk in float16 (GPU only; ignored with a warning on CPU)."
            : "Trunk in float16 with float32 masters and dynamic loss scaling (GPU only; = --precision fp16).");
        ChannelMult = Flags.Create(prefix + "channel_mult", C.ChannelMult ?? "", "Classifier channel multiplier per level, comma separated (default: the original's for the image size).");
        NumHeadChannels = Flags.Create(prefix + "num_head_channels", C.NumHeadChannels, "Classifier channels per attention head (the original: 64).");
        NumClasses = Flags.Create(prefix + "num_classes", 0, besideDiffusionModel
            ? "Classifier outputs (0: read from the checkpoint)."
            : "Classifier outputs (0: the number of classes in the data; the released ImageNet classifiers have 1000).");
    }

    private readonly bool _besideDiffusionModel;

    /// <summary>The noise-process flags (shared with the other commands).</summary>
    public DiffusionFlags DiffusionOptions { get; } = new();

    public Option<int> ImageSize { get; } = Flags.Create("image_size", C.ImageSize, "Image side in pixels (64/128/256/512 have the original's channel_mult; others need --channel_mult).");
    public Option<bool> UseFp16 { get; }
    public Option<int> Width { get; } = Flags.Create("classifier_width", C.Width, "Classifier base channel count.");
    public Option<int> Depth { get; } = Flags.Create("classifier_depth", C.Depth, "Classifier ResBlocks per resolution level.");
    public Option<string> AttentionResolutions { get; } = Flags.Create("classifier_attention_resolutions", C.AttentionResolutions, "Classifier resolutions with attention blocks, comma separated.");
    public Option<bool> ScaleShift { get; } = Flags.Create("classifier_use_scale_shift_norm", C.UseScaleShiftNorm, "Classifier timestep embedding as GroupNorm scale and shift (FiLM).");
    public Option<bool> ResblockUpdown { get; } = Flags.Create("classifier_resblock_updown", C.ResblockUpdown, "Classifier down-samples with ResBlocks instead of strided convolutions.");
    public Option<string> Pool { get; } = Flags.Create("classifier_pool", C.Pool, "Classifier output head: adaptive, attention, spatial or spatial_v2.");
    public Option<string> ChannelMult { get; }
    public Option<int> NumHeadChannels { get; }
    public Option<int> NumClasses { get; }
    public Option<double> Dropout { get; } = Flags.Create("dropout", C.Dropout, "Dropout rate in the ResBlocks.");

    public IEnumerable<Option> All => new Option[]
    {
        ImageSize, UseFp16, Width, Depth, AttentionResolutions, ScaleShift, ResblockUpdown, Pool, ChannelMult,
        NumHeadChannels, NumClasses, Dropout,
    };

    public void AddTo(Command command)
    {
        var options = _besideDiffusionModel ? All.Except([ImageSize, Dropout]) : All.Concat(DiffusionOptions.All);
        foreach (var option in options) command.Options.Add(option);
    }

    /// <summary>The architecture flags as given; NumClasses 0 means "from the data".</summary>
    public ClassifierConfig Classifier(ParseResult p) => new()
    {
        ImageSize = p.GetValue(ImageSize),
        UseFp16 = p.GetValue(UseFp16),
        Width = p.GetValue(Width),
        Depth = p.GetValue(Depth),
        AttentionResolutions = p.GetValue(AttentionResolutions) ?? "",
        UseScaleShiftNorm = p.GetValue(ScaleShift),
        ResblockUpdown = p.GetValue(ResblockUpdown),
        Pool = p.GetValue(Pool) ?? "",
        ChannelMult = string.IsNullOrWhiteSpace(p.GetValue(ChannelMult)) ? null : p.GetValue(ChannelMult),
        NumHeadChannels = p.GetValue(NumHeadChannels),
        NumClasses = p.GetValue(NumClasses),
        Dropout = p.GetValue(Dropout),
    };

    public DiffusionConfig Diffusion(ParseResult p) => DiffusionOptions.Diffusion(p);

    /// <summary>The checkpoint at <paramref name="path"/> with these flags describing it when it has no sidecar.</summary>
    public ClassifierSource Source(ParseResult p, Option<string> path) => new()
    {
        Path = p.GetValue(path) ?? "",
        Architecture = Classifier(p),
        ArchitectureGiven = AnyArchitectureFlagGiven(p),
        Diffusion = Diffusion(p),
    };

    /// <summary>Whether any architecture flag was typed (a sidecar then does not silently override it).</summary>
    public bool AnyArchitectureFlagGiven(ParseResult p) =>
        new Option[] { ImageSize, Width, Depth, AttentionResolutions, ScaleShift, ResblockUpdown, Pool, ChannelMult, NumHeadChannels, NumClasses }
            .Any(p.WasGiven);
}
