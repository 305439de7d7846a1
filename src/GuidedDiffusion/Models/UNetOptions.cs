namespace GuidedDiffusion.Models;

/// <summary>
/// The constructor arguments of the original's diffusion <c>UNetModel</c>, one to one (2-D only, no gradient
/// checkpointing). <see cref="DiffusionModelConfig.ToOptions"/> derives them from the command-line flags the way
/// <c>create_model</c> does; build this record directly for non-standard models. Defaults are the original
/// constructor's defaults.
/// </summary>
public sealed record UNetOptions
{
    /// <summary><c>image_size</c>: side of the square input (recorded; the network itself is size-agnostic).</summary>
    public required int ImageSize { get; init; }

    /// <summary><c>in_channels</c>: channels of the input image.</summary>
    public required int InChannels { get; init; }

    /// <summary><c>model_channels</c>: base channel count (the num_channels flag).</summary>
    public required int ModelChannels { get; init; }

    /// <summary><c>out_channels</c>: output channels; 2·in_channels when the model also predicts the variance.</summary>
    public required int OutChannels { get; init; }

    /// <summary><c>num_res_blocks</c>: ResBlocks per level on the way down (one more per level on the way up).</summary>
    public required int NumResBlocks { get; init; }

    /// <summary><c>attention_resolutions</c>: the <b>downsample factors</b> (1, 2, 4, ...) at which an
    /// AttentionBlock follows each ResBlock.</summary>
    public required IReadOnlyList<int> AttentionResolutions { get; init; }

    /// <summary><c>dropout</c>: dropout probability inside ResBlocks. Default 0.</summary>
    public double Dropout { get; init; }

    /// <summary><c>channel_mult</c>: per-level channel multipliers. Default 1, 2, 4, 8.</summary>
    public IReadOnlyList<double> ChannelMult { get; init; } = new double[] { 1, 2, 4, 8 };

    /// <summary><c>conv_resample</c>: learned convolutions in Downsample/Upsample when not
    /// <see cref="ResblockUpdown"/>. Default true.</summary>
    public bool ConvResample { get; init; } = true;

    /// <summary><c>num_classes</c>: class-conditional via a <c>label_emb</c> embedding when set; null for an
    /// unconditional model. Default null.</summary>
    public int? NumClasses { get; init; }

    /// <summary><c>num_heads</c>: attention heads when <see cref="NumHeadChannels"/> is −1. Default 1.</summary>
    public int NumHeads { get; init; } = 1;

    /// <summary><c>num_head_channels</c>: channels per attention head, −1 to use the head counts. Default −1.</summary>
    public int NumHeadChannels { get; init; } = -1;

    /// <summary><c>num_heads_upsample</c>: heads of the decoder's attention blocks; −1 means <see cref="NumHeads"/>.
    /// Default −1.</summary>
    public int NumHeadsUpsample { get; init; } = -1;

    /// <summary><c>use_scale_shift_norm</c>: FiLM-style timestep conditioning. Default false.</summary>
    public bool UseScaleShiftNorm { get; init; }

    /// <summary><c>resblock_updown</c>: resample with ResBlocks instead of Downsample/Upsample. Default false.</summary>
    public bool ResblockUpdown { get; init; }

    /// <summary><c>use_new_attention_order</c>: split q, k, v before heads in AttentionBlocks. Default false.</summary>
    public bool UseNewAttentionOrder { get; init; }

    /// <summary>The decoder's head count: <see cref="NumHeadsUpsample"/>, or <see cref="NumHeads"/> when it is −1.</summary>
    public int EffectiveNumHeadsUpsample => NumHeadsUpsample == -1 ? NumHeads : NumHeadsUpsample;

    /// <summary>Channels of level <paramref name="level"/>: <c>int(mult·model_channels)</c>, truncated like the original.</summary>
    public int LevelChannels(int level) => (int)(ChannelMult[level] * ModelChannels);

    /// <summary>
    /// Checks what the original would reject while building (GroupNorm(32) divisibility, head divisibility) and
    /// what it would accept but cannot work (non-positive sizes, unreachable attention factors, an image size the
    /// downsampling does not divide). Throws <see cref="ConfigurationException"/> naming the constructor argument.
    /// </summary>
    public void Validate()
    {
        Positive(ImageSize, "image_size");
        Positive(InChannels, "in_channels");
        Positive(ModelChannels, "model_channels");
        Positive(OutChannels, "out_channels");
        Positive(NumResBlocks, "num_res_blocks");
        if (NumClasses is { } classes) Positive(classes, "num_classes");
        if (!(Dropout >= 0 && Dropout < 1))
            throw new ConfigurationException("dropout", $"dropout must be in [0, 1), got {Dropout}.");
        if (ChannelMult.Count == 0)
            throw new ConfigurationException("channel_mult", "channel_mult needs at least one level.");
        if (NumHeadChannels == -1)
        {
            Positive(NumHeads, "num_heads");
            Positive(EffectiveNumHeadsUpsample, "num_heads_upsample");
        }
        else if (NumHeadChannels <= 0)
        {
            throw new ConfigurationException("num_head_channels", $"num_head_channels must be positive or -1, got {NumHeadChannels}.");
        }

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
            int level = Enumerable.Range(0, levels).FirstOrDefault(l => 1 << l == ds, -1);
            if (level < 0)
                throw new ConfigurationException("attention_resolutions",
                    $"attention at downsample factor {ds} is never reached; factors of this model are {string.Join(", ", Enumerable.Range(0, levels).Select(l => 1 << l))}.");
            CheckHeads(LevelChannels(level), NumHeads, "num_heads", $"attention at downsample factor {ds}");
            CheckHeads(LevelChannels(level), EffectiveNumHeadsUpsample, "num_heads_upsample", $"decoder attention at downsample factor {ds}");
        }
        CheckHeads(LevelChannels(levels - 1), NumHeads, "num_heads", "the middle block's attention");
    }

    private void CheckHeads(int channels, int heads, string headsFlag, string where)
    {
        if (NumHeadChannels != -1 && channels % NumHeadChannels != 0)
            throw new ConfigurationException("num_head_channels",
                $"q,k,v channels {channels} ({where}) is not divisible by num_head_channels {NumHeadChannels}.");
        if (NumHeadChannels == -1 && channels % heads != 0)
            throw new ConfigurationException(headsFlag, $"{channels} channels ({where}) are not divisible by {headsFlag} {heads}.");
    }

    private static void Positive(int value, string flag)
    {
        if (value <= 0) throw new ConfigurationException(flag, $"{flag} must be positive, got {value}.");
    }
}
