namespace GuidedDiffusion.Models;

/// <summary>
/// The constructor arguments of the original's <c>EncoderUNetModel</c>, one to one (2-D only, no gradient
/// checkpointing). <see cref="ClassifierConfig.ToOptions"/> derives them from the command-line flags the way
/// <c>create_classifier</c> does; build this record directly for non-standard models (the small reference cases).
/// Defaults are the original constructor's defaults.
/// </summary>
public sealed record EncoderUNetOptions
{
    /// <summary><c>image_size</c>: side of the square input; sizes the attention pool's positional embedding.</summary>
    public required int ImageSize { get; init; }

    /// <summary><c>in_channels</c>: channels of the input image.</summary>
    public required int InChannels { get; init; }

    /// <summary><c>model_channels</c>: base channel count (the classifier_width flag).</summary>
    public required int ModelChannels { get; init; }

    /// <summary><c>out_channels</c>: number of logits.</summary>
    public required int OutChannels { get; init; }

    /// <summary><c>num_res_blocks</c>: ResBlocks per level (the classifier_depth flag).</summary>
    public required int NumResBlocks { get; init; }

    /// <summary><c>attention_resolutions</c>: the <b>downsample factors</b> (1, 2, 4, ...) at which an
    /// AttentionBlock follows each ResBlock.</summary>
    public required IReadOnlyList<int> AttentionResolutions { get; init; }

    /// <summary><c>dropout</c>: dropout probability inside ResBlocks. Default 0.</summary>
    public double Dropout { get; init; }

    /// <summary><c>channel_mult</c>: per-level channel multipliers. Default 1, 2, 4, 8.</summary>
    public IReadOnlyList<double> ChannelMult { get; init; } = new double[] { 1, 2, 4, 8 };

    /// <summary><c>conv_resample</c>: learned stride-2 convolution (else average pool) when not
    /// <see cref="ResblockUpdown"/>. Default true.</summary>
    public bool ConvResample { get; init; } = true;

    /// <summary><c>num_heads</c>: attention heads when <see cref="NumHeadChannels"/> is −1. Default 1.</summary>
    public int NumHeads { get; init; } = 1;

    /// <summary><c>num_head_channels</c>: channels per attention head, −1 to use <see cref="NumHeads"/>. Default −1;
    /// the attention pool requires a positive value.</summary>
    public int NumHeadChannels { get; init; } = -1;

    /// <summary><c>use_scale_shift_norm</c>: FiLM-style timestep conditioning. Default false.</summary>
    public bool UseScaleShiftNorm { get; init; }

    /// <summary><c>resblock_updown</c>: downsample with ResBlocks instead of <see cref="Downsample"/>. Default false.</summary>
    public bool ResblockUpdown { get; init; }

    /// <summary><c>use_new_attention_order</c>: split q, k, v before heads in AttentionBlocks. Default false.</summary>
    public bool UseNewAttentionOrder { get; init; }

    /// <summary><c>pool</c>: the head. Default <see cref="ClassifierPool.Adaptive"/>.</summary>
    public ClassifierPool Pool { get; init; } = ClassifierPool.Adaptive;

    /// <summary>Channels of level <paramref name="level"/>: <c>int(mult·model_channels)</c>, truncated like the original.</summary>
    public int LevelChannels(int level) => (int)(ChannelMult[level] * ModelChannels);

    /// <summary>
    /// Checks what the original would reject while building (GroupNorm(32) divisibility, head divisibility, the
    /// attention pool's need for num_head_channels) and what it would accept but cannot work (non-positive sizes,
    /// an image size the downsampling does not divide). Throws <see cref="ConfigurationException"/> naming the
    /// constructor argument.
    /// </summary>
    public void Validate()
    {
        Positive(ImageSize, "image_size");
        Positive(InChannels, "in_channels");
        Positive(ModelChannels, "model_channels");
        Positive(OutChannels, "out_channels");
        Positive(NumResBlocks, "num_res_blocks");
        if (!(Dropout >= 0 && Dropout < 1))
            throw new ConfigurationException("dropout", $"dropout must be in [0, 1), got {Dropout}.");
        if (ChannelMult.Count == 0)
            throw new ConfigurationException("channel_mult", "channel_mult needs at least one level.");
        if (NumHeadChannels == -1) Positive(NumHeads, "num_heads");
        else if (NumHeadChannels <= 0)
            throw new ConfigurationException("num_head_channels", $"num_head_channels must be positive or -1, got {NumHeadChannels}.");
        if (Pool == ClassifierPool.Attention && NumHeadChannels == -1)
            throw new ConfigurationException("num_head_channels", "pool 'attention' needs num_head_channels (channels per head); -1 is not allowed.");

        for (int level = 0; level < ChannelMult.Count; level++)
        {
            int ch = LevelChannels(level);
            if (ch <= 0 || ch % GroupNorm32.Groups != 0)
                throw new ConfigurationException("channel_mult",
                    $"level {level} has {ChannelMult[level]}·{ModelChannels} = {ch} channels; GroupNorm(32) needs a positive multiple of 32.");
        }

        int levels = ChannelMult.Count;
        int finalFactor = 1 << (levels - 1);
        if (ImageSize % finalFactor != 0)
            throw new ConfigurationException("image_size",
                $"image_size {ImageSize} is not divisible by {finalFactor}, the downsampling of {levels} levels.");

        foreach (int ds in AttentionResolutions)
        {
            int level = DownsampleLevel(ds, levels);
            if (level < 0)
                throw new ConfigurationException("attention_resolutions",
                    $"attention at downsample factor {ds} is never reached; factors of this model are {string.Join(", ", Enumerable.Range(0, levels).Select(l => 1 << l))}.");
            CheckHeads(LevelChannels(level), $"attention at downsample factor {ds}");
        }
        CheckHeads(LevelChannels(levels - 1), "the middle block's attention");
    }

    private void CheckHeads(int channels, string where)
    {
        if (NumHeadChannels != -1 && channels % NumHeadChannels != 0)
            throw new ConfigurationException("num_head_channels",
                $"q,k,v channels {channels} ({where}) is not divisible by num_head_channels {NumHeadChannels}.");
        if (NumHeadChannels == -1 && channels % NumHeads != 0)
            throw new ConfigurationException("num_heads", $"{channels} channels ({where}) are not divisible by num_heads {NumHeads}.");
    }

    private static int DownsampleLevel(int ds, int levels)
    {
        for (int level = 0; level < levels; level++)
            if (1 << level == ds) return level;
        return -1;
    }

    private static void Positive(int value, string flag)
    {
        if (value <= 0) throw new ConfigurationException(flag, $"{flag} must be positive, got {value}.");
    }
}
