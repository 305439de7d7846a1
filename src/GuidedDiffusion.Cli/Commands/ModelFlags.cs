using System.CommandLine;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// The classifier and diffusion flags of the original's <c>classifier_and_diffusion_defaults()</c>, plus ours
/// (channel_mult, num_head_channels, num_classes), bound to <see cref="ClassifierConfig"/> and <see cref="DiffusionConfig"/>.
/// </summary>
internal sealed class ModelFlags
{
    private static readonly ClassifierConfig C = new();
    /// <summary>The noise-process flags (shared with the other commands).</summary>
    public DiffusionFlags DiffusionOptions { get; } = new();

    public Option<int> ImageSize { get; } = Flags.Create("image_size", C.ImageSize, "Image side in pixels (64/128/256/512 have the original's channel_mult; others need --channel_mult).");
    public Option<bool> UseFp16 { get; } = Flags.Create("classifier_use_fp16", C.UseFp16, "Trunk in float16 with float32 masters and dynamic loss scaling (GPU only; = --precision fp16).");
    public Option<int> Width { get; } = Flags.Create("classifier_width", C.Width, "Base channel count.");
    public Option<int> Depth { get; } = Flags.Create("classifier_depth", C.Depth, "ResBlocks per resolution level.");
    public Option<string> AttentionResolutions { get; } = Flags.Create("classifier_attention_resolutions", C.AttentionResolutions, "Resolutions with attention blocks, comma separated.");
    public Option<bool> ScaleShift { get; } = Flags.Create("classifier_use_scale_shift_norm", C.UseScaleShiftNorm, "Timestep embedding as GroupNorm scale and shift (FiLM).");
    public Option<bool> ResblockUpdown { get; } = Flags.Create("classifier_resblock_updown", C.ResblockUpdown, "Down-sample with ResBlocks instead of strided convolutions.");
    public Option<string> Pool { get; } = Flags.Create("classifier_pool", C.Pool, "Output head: adaptive, attention, spatial or spatial_v2.");
    public Option<string> ChannelMult { get; } = Flags.Create("channel_mult", C.ChannelMult ?? "", "Channel multiplier per level, comma separated (default: the original's for the image size).");
    public Option<int> NumHeadChannels { get; } = Flags.Create("num_head_channels", C.NumHeadChannels, "Channels per attention head.");
    public Option<int> NumClasses { get; } = Flags.Create("num_classes", 0, "Classifier outputs (0: the number of classes in the data; the released ImageNet classifiers have 1000).");
    public Option<double> Dropout { get; } = Flags.Create("dropout", C.Dropout, "Dropout rate in the ResBlocks.");


    public IEnumerable<Option> All => new Option[]
    {
        ImageSize, UseFp16, Width, Depth, AttentionResolutions, ScaleShift, ResblockUpdown, Pool, ChannelMult,
        NumHeadChannels, NumClasses, Dropout,
    };

    public void AddTo(Command command)
    {
        foreach (var option in All.Concat(DiffusionOptions.All)) command.Options.Add(option);
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
