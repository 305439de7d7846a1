using System.CommandLine;
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
    private static readonly DiffusionConfig D = new();

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

    public Option<bool> LearnSigma { get; } = Flags.Create("learn_sigma", D.LearnSigma, "Diffusion flag (accepted for compatibility; used by sampling).");
    public Option<int> DiffusionSteps { get; } = Flags.Create("diffusion_steps", D.DiffusionSteps, "Steps T of the noise process.");
    public Option<string> NoiseSchedule { get; } = Flags.Create("noise_schedule", D.NoiseSchedule, "Beta schedule: linear or cosine.");
    public Option<string> TimestepRespacing { get; } = Flags.Create("timestep_respacing", D.TimestepRespacing, "Respacing: '', N, a,b,c or ddimN.");
    public Option<bool> UseKl { get; } = Flags.Create("use_kl", D.UseKl, "Diffusion flag (accepted for compatibility).");
    public Option<bool> PredictXstart { get; } = Flags.Create("predict_xstart", D.PredictXstart, "Diffusion flag (accepted for compatibility).");
    public Option<bool> RescaleTimesteps { get; } = Flags.Create("rescale_timesteps", D.RescaleTimesteps, "Diffusion flag (used by sampling).");
    public Option<bool> RescaleLearnedSigmas { get; } = Flags.Create("rescale_learned_sigmas", D.RescaleLearnedSigmas, "Diffusion flag (accepted for compatibility).");

    public IEnumerable<Option> All => new Option[]
    {
        ImageSize, UseFp16, Width, Depth, AttentionResolutions, ScaleShift, ResblockUpdown, Pool, ChannelMult,
        NumHeadChannels, NumClasses, Dropout, LearnSigma, DiffusionSteps, NoiseSchedule, TimestepRespacing, UseKl,
        PredictXstart, RescaleTimesteps, RescaleLearnedSigmas,
    };

    public void AddTo(Command command)
    {
        foreach (var option in All) command.Options.Add(option);
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

    public DiffusionConfig Diffusion(ParseResult p) => new()
    {
        LearnSigma = p.GetValue(LearnSigma),
        DiffusionSteps = p.GetValue(DiffusionSteps),
        NoiseSchedule = p.GetValue(NoiseSchedule) ?? "",
        TimestepRespacing = p.GetValue(TimestepRespacing) ?? "",
        UseKl = p.GetValue(UseKl),
        PredictXstart = p.GetValue(PredictXstart),
        RescaleTimesteps = p.GetValue(RescaleTimesteps),
        RescaleLearnedSigmas = p.GetValue(RescaleLearnedSigmas),
    };

    /// <summary>Whether any architecture flag was typed (a sidecar then does not silently override it).</summary>
    public bool AnyArchitectureFlagGiven(ParseResult p) =>
        new Option[] { ImageSize, Width, Depth, AttentionResolutions, ScaleShift, ResblockUpdown, Pool, ChannelMult, NumHeadChannels, NumClasses }
            .Any(p.WasGiven);
}
