using System.CommandLine;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// The diffusion model flags of the original's <c>model_and_diffusion_defaults()</c> (plus num_classes), bound to
/// <see cref="DiffusionModelConfig"/>; with the <see cref="DiffusionFlags"/> they describe a model and its process.
/// </summary>
internal static class DiffusionModelFlags
{
    public static readonly FlagTable<DiffusionModelConfig> Table = new();

    public static readonly Flag<DiffusionModelConfig> ImageSize = Table.Add(ModelShapeFlags.ImageSize, m => m.ImageSize, (m, v) => m with { ImageSize = v });
    public static readonly Flag<DiffusionModelConfig> NumChannels = Table.Add("num_channels", "Base channel count of the diffusion model.",
        m => m.NumChannels, (m, v) => m with { NumChannels = v });
    public static readonly Flag<DiffusionModelConfig> NumResBlocks = Table.Add("num_res_blocks", "ResBlocks per resolution level.",
        m => m.NumResBlocks, (m, v) => m with { NumResBlocks = v });
    public static readonly Flag<DiffusionModelConfig> NumHeads = Table.Add("num_heads", "Attention heads (when --num_head_channels is -1).",
        m => m.NumHeads, (m, v) => m with { NumHeads = v });
    public static readonly Flag<DiffusionModelConfig> NumHeadsUpsample = Table.Add("num_heads_upsample", "Decoder attention heads (-1: --num_heads).",
        m => m.NumHeadsUpsample, (m, v) => m with { NumHeadsUpsample = v });
    public static readonly Flag<DiffusionModelConfig> NumHeadChannels = Table.Add("num_head_channels", "Channels per attention head (-1: use the head counts).",
        m => m.NumHeadChannels, (m, v) => m with { NumHeadChannels = v });
    public static readonly Flag<DiffusionModelConfig> AttentionResolutions = Table.Add<SettingList<int>, string>("attention_resolutions", "Resolutions with attention blocks, comma separated.",
        m => m.AttentionResolutions, (m, v) => m with { AttentionResolutions = v }, text => SettingList<int>.Parse(text, "attention_resolutions"), v => v.ToString());
    public static readonly Flag<DiffusionModelConfig> ChannelMult = Table.Add<SettingList<double>?, string>("channel_mult", "Channel multiplier per level (default: the original's for the image size).",
        m => m.ChannelMult, (m, v) => m with { ChannelMult = v }, text => ChannelMultFlag.Parse(text, "channel_mult"), ChannelMultFlag.Spell);
    public static readonly Flag<DiffusionModelConfig> Dropout = Table.Add(ModelShapeFlags.Dropout, m => m.Dropout, (m, v) => m with { Dropout = v });
    public static readonly Flag<DiffusionModelConfig> ClassCond = Table.Add("class_cond", "The model is class-conditional (has label_emb).",
        m => m.ClassCond, (m, v) => m with { ClassCond = v });
    public static readonly Flag<DiffusionModelConfig> UseCheckpoint = Table.Add("use_checkpoint", "Gradient checkpointing in training: ResBlocks and attention are recomputed in the backward instead of keeping their activations (less memory, ~1 more forward of time; same results).",
        m => m.UseCheckpoint, (m, v) => m with { UseCheckpoint = v });
    public static readonly Flag<DiffusionModelConfig> UseScaleShiftNorm = Table.Add("use_scale_shift_norm", "Timestep embedding as GroupNorm scale and shift.",
        m => m.UseScaleShiftNorm, (m, v) => m with { UseScaleShiftNorm = v });
    public static readonly Flag<DiffusionModelConfig> ResblockUpdown = Table.Add("resblock_updown", "Resample with ResBlocks.",
        m => m.ResblockUpdown, (m, v) => m with { ResblockUpdown = v });
    public static readonly Flag<DiffusionModelConfig> UseFp16 = Table.Add("use_fp16", "Float16 trunk (GPU only): sampling converts after loading; image-train uses --precision fp16.",
        m => m.UseFp16, (m, v) => m with { UseFp16 = v });
    public static readonly Flag<DiffusionModelConfig> UseNewAttentionOrder = Table.Add("use_new_attention_order", "Split q, k, v before heads.",
        m => m.UseNewAttentionOrder, (m, v) => m with { UseNewAttentionOrder = v });
    public static readonly Flag<DiffusionModelConfig> NumClasses = Table.Add("num_classes", "Size of the model's label embedding (the original: 1000).",
        m => m.NumClasses, (m, v) => m with { NumClasses = v });

    /// <summary>A diffusion model's and its noise process's flags on one command.</summary>
    public sealed record Bound(FlagSet<DiffusionModelConfig> Model, FlagSet<DiffusionConfig> Diffusion)
    {
        /// <summary>The model as typed; learn_sigma is a diffusion flag that also shapes the model's output.</summary>
        public DiffusionModelConfig BindModel(ParseResult parse) => Model.Bind(parse) with { LearnSigma = Diffusion.Bind(parse).LearnSigma };

        /// <summary>The model and process settings typed (the respacing applies to any checkpoint, so it never competes with a sidecar).</summary>
        public IReadOnlySet<string> SettingsGiven(ParseResult parse) =>
            Model.GivenSettings(parse).Union(Diffusion.GivenSettings(parse, DiffusionFlags.TimestepRespacing)).ToHashSet();
    }

    /// <summary>Adds the model and diffusion flags, with the records' defaults (or <paramref name="model"/>'s).</summary>
    public static Bound AddTo(Command command, DiffusionModelConfig? model = null) =>
        new(Table.AddTo(command, model ?? new DiffusionModelConfig()), DiffusionFlags.Table.AddTo(command, new DiffusionConfig()));
}

/// <summary>The <c>model_path</c> of a command that loads a diffusion model checkpoint, bound to <see cref="DiffusionModelSource"/>.</summary>
internal static class DiffusionModelSourceFlags
{
    public static readonly FlagTable<DiffusionModelSource> Table = new();

    public static readonly Flag<DiffusionModelSource> ModelPath = Table.Add("model_path", "Diffusion model checkpoint (.pt or .safetensors); its JSON sidecar, if any, supplies the architecture and noise process.",
        s => s.Path, (s, v) => s with { Path = v });

    /// <summary>The checkpoint flag with the model and diffusion flags that describe a checkpoint without a sidecar.</summary>
    public sealed record Bound(FlagSet<DiffusionModelSource> Source, DiffusionModelFlags.Bound Model)
    {
        public DiffusionModelSource Bind(ParseResult parse) => Source.Bind(parse) with
        {
            Architecture = Model.BindModel(parse),
            Diffusion = Model.Diffusion.Bind(parse),
            SettingsGiven = Model.SettingsGiven(parse),
        };
    }

    /// <summary>Adds model_path and the diffusion model and process flags.</summary>
    public static Bound AddTo(Command command) => new(Table.AddTo(command, new DiffusionModelSource()), DiffusionModelFlags.AddTo(command));
}

/// <summary>How channel_mult is spelled on the command line: a comma-separated list, empty for the image size's default (null).</summary>
internal static class ChannelMultFlag
{
    /// <param name="text">The text typed.</param>
    /// <param name="setting">The setting named in an error (channel_mult, or a classifier's classifier_channel_mult).</param>
    public static SettingList<double>? Parse(string? text, string setting) =>
        string.IsNullOrWhiteSpace(text) ? null : SettingList<double>.Parse(text, setting);

    public static string Spell(SettingList<double>? mult) => mult?.ToString() ?? "";
}
