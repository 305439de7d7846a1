namespace GuidedDiffusion.Models;

/// <summary>
/// The diffusion model's architecture flags with the original's defaults (the model half of
/// <c>model_and_diffusion_defaults()</c> in script_util.py), plus <see cref="NumClasses"/> (the original hard-codes
/// 1000). <see cref="ToOptions"/> turns them into <see cref="UNetOptions"/> the way <c>create_model</c> does, so
/// the released <c>*_diffusion.pt</c> files load with the flags from the original README.
/// </summary>
public sealed record DiffusionModelConfig
{
    /// <summary><c>image_size</c>: side of the square images. Default 64.</summary>
    public int ImageSize { get; init; } = 64;

    /// <summary><c>in_channels</c>: image channels (the original hard-codes 3). Default 3.</summary>
    public int InChannels { get; init; } = 3;

    /// <summary><c>num_channels</c>: base channel count (model_channels). Default 128.</summary>
    public int NumChannels { get; init; } = 128;

    /// <summary><c>num_res_blocks</c>: ResBlocks per level. Default 2.</summary>
    public int NumResBlocks { get; init; } = 2;

    /// <summary><c>num_heads</c>: attention heads when <see cref="NumHeadChannels"/> is −1. Default 4.</summary>
    public int NumHeads { get; init; } = 4;

    /// <summary><c>num_heads_upsample</c>: heads of the decoder's attention; −1 = <see cref="NumHeads"/>. Default −1.</summary>
    public int NumHeadsUpsample { get; init; } = -1;

    /// <summary><c>num_head_channels</c>: channels per head (overrides the head counts); −1 = off. Default −1.</summary>
    public int NumHeadChannels { get; init; } = -1;

    /// <summary><c>attention_resolutions</c>: feature-map resolutions (not factors) with attention; each becomes the
    /// downsample factor image_size / resolution. Default 16,8.</summary>
    public SettingList<int> AttentionResolutions { get; init; } = [16, 8];

    /// <summary><c>channel_mult</c>: per-level multipliers; null or empty for the image size's default
    /// (<see cref="ClassifierConfig.DefaultChannelMult"/>, the same table as create_model's). Default null.</summary>
    public SettingList<double>? ChannelMult { get; init; }

    /// <summary><c>dropout</c>: dropout probability in the ResBlocks (active only in training mode). Default 0.</summary>
    public double Dropout { get; init; }

    /// <summary><c>class_cond</c>: a label embedding conditions the model on y. Default false.</summary>
    public bool ClassCond { get; init; }

    /// <summary><c>use_checkpoint</c>: gradient checkpointing of the ResBlocks and AttentionBlocks
    /// (<see cref="UNetTrunkOptions.UseCheckpoint"/>): less activation memory in training for a second forward pass
    /// in the backward; the outputs and gradients are unchanged. Default false.</summary>
    public bool UseCheckpoint { get; init; }

    /// <summary><c>use_scale_shift_norm</c>: FiLM-style timestep conditioning. Default true.</summary>
    public bool UseScaleShiftNorm { get; init; } = true;

    /// <summary><c>resblock_updown</c>: resample with ResBlocks. Default false.</summary>
    public bool ResblockUpdown { get; init; }

    /// <summary><c>use_fp16</c>: run the trunk in float16 (the sampler converts after loading, like the original's
    /// <c>convert_to_fp16</c>; GPU only). The model is always built in float32. Default false.</summary>
    public bool UseFp16 { get; init; }

    /// <summary><c>use_new_attention_order</c>: split q, k, v before heads. Default false.</summary>
    public bool UseNewAttentionOrder { get; init; }

    /// <summary><c>learn_sigma</c>: the model also outputs the variance interpolation values (2·in_channels
    /// outputs). Default false.</summary>
    public bool LearnSigma { get; init; }

    /// <summary><c>num_classes</c>: size of the label embedding when <see cref="ClassCond"/> (the original
    /// hard-codes 1000). Default 1000.</summary>
    public int NumClasses { get; init; } = 1000;

    /// <summary>The channel multipliers: <see cref="ChannelMult"/> if given, else the default for the image size.</summary>
    /// <exception cref="ConfigurationException">A value that is not positive, or an image size without a default.</exception>
    public IReadOnlyList<double> ResolveChannelMult() => TrunkFlags.ResolveChannelMult(ChannelMult, ImageSize);

    /// <summary>The attention downsample factors image_size / resolution (the original's <c>attention_ds</c>).</summary>
    /// <exception cref="ConfigurationException">A resolution the model's levels never reach.</exception>
    public IReadOnlyList<int> ResolveAttentionDownsampleFactors()
    {
        var mult = ResolveChannelMult();
        var reachable = TrunkFlags.LevelResolutions(ImageSize, mult.Count);
        AttentionResolutions.CheckPositive("attention_resolutions");
        var factors = new List<int>();
        foreach (int r in AttentionResolutions)
        {
            int level = Array.IndexOf(reachable, r);
            if (r <= 0 || ImageSize % r != 0 || level < 0 || ImageSize % (1 << level) != 0)
                throw new ConfigurationException("attention_resolutions",
                    $"attention resolution {r} is never reached at image_size {ImageSize} with channel_mult "
                    + $"{string.Join(",", mult)}; the levels have resolutions {string.Join(", ", reachable)}.");
            factors.Add(ImageSize / r);
        }
        return factors;
    }

    /// <summary>The <c>UNetModel</c> arguments these flags stand for, as <c>create_model</c> passes them (validated).</summary>
    /// <exception cref="ConfigurationException">Any flag that cannot work, named in the message.</exception>
    public UNetOptions ToOptions()
    {
        if (NumClasses <= 0) throw new ConfigurationException("num_classes", $"{SettingText.Ref("num_classes")} must be positive, got {NumClasses}.");
        var options = new UNetOptions
        {
            ImageSize = ImageSize,
            InChannels = InChannels,
            ModelChannels = NumChannels,
            OutChannels = LearnSigma ? 2 * InChannels : InChannels,
            NumResBlocks = NumResBlocks,
            AttentionResolutions = ResolveAttentionDownsampleFactors(),
            Dropout = Dropout,
            ChannelMult = ResolveChannelMult(),
            NumClasses = ClassCond ? NumClasses : null,
            NumHeads = NumHeads,
            NumHeadChannels = NumHeadChannels,
            NumHeadsUpsample = NumHeadsUpsample,
            UseScaleShiftNorm = UseScaleShiftNorm,
            ResblockUpdown = ResblockUpdown,
            UseNewAttentionOrder = UseNewAttentionOrder,
            UseCheckpoint = UseCheckpoint,
        };
        options.Validate(new TrunkSettingNames { ModelChannels = "num_channels", OutChannels = "in_channels" });
        return options;
    }
}
