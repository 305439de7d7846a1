using System.CommandLine;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// The diffusion model and diffusion flags of the original's <c>model_and_diffusion_defaults()</c> (plus
/// num_classes), bound to <see cref="DiffusionModelConfig"/> and <see cref="DiffusionConfig"/>; defaults come
/// from those records.
/// </summary>
internal sealed class DiffusionModelFlags
{
    private static readonly DiffusionModelConfig M = new();
    /// <summary>The noise-process flags (shared with the other commands).</summary>
    public DiffusionFlags DiffusionOptions { get; } = new();

    public Option<int> ImageSize { get; } = Flags.Create("image_size", M.ImageSize, "Image side in pixels (64/128/256/512 have the original's channel_mult; others need --channel_mult).");
    public Option<int> NumChannels { get; } = Flags.Create("num_channels", M.NumChannels, "Base channel count of the diffusion model.");
    public Option<int> NumResBlocks { get; } = Flags.Create("num_res_blocks", M.NumResBlocks, "ResBlocks per resolution level.");
    public Option<int> NumHeads { get; } = Flags.Create("num_heads", M.NumHeads, "Attention heads (when --num_head_channels is -1).");
    public Option<int> NumHeadsUpsample { get; } = Flags.Create("num_heads_upsample", M.NumHeadsUpsample, "Decoder attention heads (-1: --num_heads).");
    public Option<int> NumHeadChannels { get; } = Flags.Create("num_head_channels", M.NumHeadChannels, "Channels per attention head (-1: use the head counts).");
    public Option<string> AttentionResolutions { get; } = Flags.Create("attention_resolutions", M.AttentionResolutions, "Resolutions with attention blocks, comma separated.");
    public Option<string> ChannelMult { get; } = Flags.Create("channel_mult", M.ChannelMult, "Channel multiplier per level (default: the original's for the image size).");
    public Option<double> Dropout { get; } = Flags.Create("dropout", M.Dropout, "Dropout in the ResBlocks (inactive while sampling).");
    public Option<bool> ClassCond { get; } = Flags.Create("class_cond", M.ClassCond, "The model is class-conditional (has label_emb).");
    public Option<bool> UseCheckpoint { get; } = Flags.Create("use_checkpoint", M.UseCheckpoint, "Gradient checkpointing (accepted; no effect on sampling).");
    public Option<bool> UseScaleShiftNorm { get; } = Flags.Create("use_scale_shift_norm", M.UseScaleShiftNorm, "Timestep embedding as GroupNorm scale and shift.");
    public Option<bool> ResblockUpdown { get; } = Flags.Create("resblock_updown", M.ResblockUpdown, "Resample with ResBlocks.");
    public Option<bool> UseFp16 { get; } = Flags.Create("use_fp16", M.UseFp16, "Float16 trunk (GPU only): sampling converts after loading; image-train uses --precision fp16.");
    public Option<bool> UseNewAttentionOrder { get; } = Flags.Create("use_new_attention_order", M.UseNewAttentionOrder, "Split q, k, v before heads.");
    public Option<int> NumClasses { get; } = Flags.Create("num_classes", M.NumClasses, "Size of the model's label embedding (the original: 1000).");


    public IEnumerable<Option> All => new Option[]
    {
        ImageSize, NumChannels, NumResBlocks, NumHeads, NumHeadsUpsample, NumHeadChannels, AttentionResolutions, ChannelMult,
        Dropout, ClassCond, UseCheckpoint, UseScaleShiftNorm, ResblockUpdown, UseFp16, UseNewAttentionOrder, NumClasses,
    };

    public void AddTo(Command command)
    {
        foreach (var option in All.Concat(DiffusionOptions.All)) command.Options.Add(option);
    }

    public DiffusionModelConfig Model(ParseResult p) => new()
    {
        ImageSize = p.GetValue(ImageSize),
        NumChannels = p.GetValue(NumChannels),
        NumResBlocks = p.GetValue(NumResBlocks),
        NumHeads = p.GetValue(NumHeads),
        NumHeadsUpsample = p.GetValue(NumHeadsUpsample),
        NumHeadChannels = p.GetValue(NumHeadChannels),
        AttentionResolutions = p.GetValue(AttentionResolutions) ?? "",
        ChannelMult = p.GetValue(ChannelMult) ?? "",
        Dropout = p.GetValue(Dropout),
        ClassCond = p.GetValue(ClassCond),
        UseCheckpoint = p.GetValue(UseCheckpoint),
        UseScaleShiftNorm = p.GetValue(UseScaleShiftNorm),
        ResblockUpdown = p.GetValue(ResblockUpdown),
        UseFp16 = p.GetValue(UseFp16),
        UseNewAttentionOrder = p.GetValue(UseNewAttentionOrder),
        LearnSigma = p.GetValue(DiffusionOptions.LearnSigma),
        NumClasses = p.GetValue(NumClasses),
    };

    public DiffusionConfig Diffusion(ParseResult p) => DiffusionOptions.Diffusion(p);
}
