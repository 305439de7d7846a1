namespace GuidedDiffusion.Models;

/// <summary>
/// The constructor arguments the original's <c>UNetModel</c> and <c>EncoderUNetModel</c> share: the trunk of
/// time-conditioned ResBlocks, attention and downsampling both are built from. <see cref="UNetOptions"/> and
/// <see cref="EncoderUNetOptions"/> add what only one of them has; <see cref="Validate(TrunkSettingNames)"/> is the one check of the
/// shared part. Defaults are the original constructors' defaults.
/// </summary>
public abstract record UNetTrunkOptions
{
    /// <summary><c>image_size</c>: side of the square input.</summary>
    public required int ImageSize { get; init; }

    /// <summary><c>in_channels</c>: channels of the input image.</summary>
    public required int InChannels { get; init; }

    /// <summary><c>model_channels</c>: base channel count (num_channels for the diffusion model, classifier_width
    /// for the classifier).</summary>
    public required int ModelChannels { get; init; }

    /// <summary><c>out_channels</c>: output channels (the diffusion model) or logits (the classifier).</summary>
    public required int OutChannels { get; init; }

    /// <summary><c>num_res_blocks</c>: ResBlocks per level (on the way down; the decoder has one more).</summary>
    public required int NumResBlocks { get; init; }

    /// <summary><c>attention_resolutions</c>: the <b>downsample factors</b> (1, 2, 4, ...) at which an
    /// AttentionBlock follows each ResBlock.</summary>
    public required IReadOnlyList<int> AttentionResolutions { get; init; }

    /// <summary><c>dropout</c>: dropout probability inside ResBlocks. Default 0.</summary>
    public double Dropout { get; init; }

    /// <summary><c>channel_mult</c>: per-level channel multipliers. Default 1, 2, 4, 8.</summary>
    public IReadOnlyList<double> ChannelMult { get; init; } = new double[] { 1, 2, 4, 8 };

    /// <summary><c>conv_resample</c>: learned convolutions (else average pool / nearest) for resampling when not
    /// <see cref="ResblockUpdown"/>. Default true.</summary>
    public bool ConvResample { get; init; } = true;

    /// <summary><c>num_heads</c>: attention heads when <see cref="NumHeadChannels"/> is −1. Default 1.</summary>
    public int NumHeads { get; init; } = 1;

    /// <summary><c>num_head_channels</c>: channels per attention head, −1 to use the head counts. Default −1.</summary>
    public int NumHeadChannels { get; init; } = -1;

    /// <summary><c>use_scale_shift_norm</c>: FiLM-style timestep conditioning. Default false.</summary>
    public bool UseScaleShiftNorm { get; init; }

    /// <summary><c>resblock_updown</c>: resample with ResBlocks instead of Downsample/Upsample. Default false.</summary>
    public bool ResblockUpdown { get; init; }

    /// <summary><c>use_new_attention_order</c>: split q, k, v before heads in AttentionBlocks. Default false.</summary>
    public bool UseNewAttentionOrder { get; init; }

    /// <summary>
    /// <c>use_checkpoint</c>: gradient checkpointing of every ResBlock and AttentionBlock (<see cref="GradientCheckpoint"/>):
    /// a block keeps only its inputs in the forward and is run again in the backward, so activation memory falls to
    /// about one tensor per block for roughly one more forward pass of time. Outputs and gradients are unchanged.
    /// The original also recomputes every AttentionBlock when this is off (it passes <c>True</c> there); this port
    /// does not: its fused attention keeps no T×T matrix, so recomputing it would cost time for little memory.
    /// Default false.
    /// </summary>
    public bool UseCheckpoint { get; init; }

    /// <summary>Channels of level <paramref name="level"/>: <c>int(mult·model_channels)</c>, truncated like the original.</summary>
    public int LevelChannels(int level) => (int)(ChannelMult[level] * ModelChannels);

    /// <summary>
    /// Checks what the original would reject while building (GroupNorm(32) divisibility, head divisibility, and
    /// what the derived model adds) and what it would accept but cannot work (non-positive sizes, unreachable
    /// attention factors, an image size the downsampling does not divide). Throws <see cref="ConfigurationException"/>
    /// naming the constructor argument.
    /// </summary>
    public void Validate() => Validate(new TrunkSettingNames());

    /// <summary>
    /// <see cref="Validate()"/>, naming in its errors the settings the arguments came from (e.g. classifier_width for
    /// model_channels): the one check of a trunk, whether it was built from flags or by hand.
    /// </summary>
    /// <param name="names">The setting behind each renamed argument.</param>
    public void Validate(TrunkSettingNames names)
    {
        ArgumentNullException.ThrowIfNull(names);
        Positive(ImageSize, "image_size");
        Positive(InChannels, "in_channels");
        Positive(ModelChannels, names.ModelChannels);
        Positive(OutChannels, names.OutChannels);
        // 0 is allowed: the original builds such a trunk (only the level changes and the middle block) and saves it.
        if (NumResBlocks < 0)
            throw new ConfigurationException(names.NumResBlocks, $"{SettingText.Ref(names.NumResBlocks)} must be 0 or more, got {NumResBlocks}.");
        ValidateOwnSizes();
        if (!(Dropout >= 0 && Dropout < 1))
            throw new ConfigurationException("dropout", $"{SettingText.Ref("dropout")} must be in [0, 1), got {Dropout}.");
        if (ChannelMult.Count == 0)
            throw new ConfigurationException(names.ChannelMult, $"{SettingText.Ref(names.ChannelMult)} needs at least one level.");
        if (NumHeadChannels == -1) Positive(NumHeads, "num_heads");
        else if (NumHeadChannels <= 0)
            throw new ConfigurationException(names.NumHeadChannels, $"{SettingText.Ref(names.NumHeadChannels)} must be positive or -1, got {NumHeadChannels}.");
        ValidateOwnHeads(names);

        int levels = ChannelMult.Count;
        for (int level = 0; level < levels; level++)
        {
            int ch = LevelChannels(level);
            if (ch <= 0 || ch % GroupNorm32.Groups != 0)
                throw new ConfigurationException(names.ModelChannels,
                    $"{SettingText.Ref(names.ModelChannels)} {ModelChannels} × channel_mult {ChannelMult[level]} = {ch} channels at level {level}; "
                    + "GroupNorm(32) needs a positive multiple of 32.");
        }

        int finalFactor = 1 << (levels - 1);
        if (ImageSize % finalFactor != 0)
            throw new ConfigurationException("image_size",
                $"image_size {ImageSize} is not divisible by {finalFactor}, the downsampling of the {levels} levels of channel_mult {string.Join(",", ChannelMult)}.");

        foreach (int ds in AttentionResolutions)
        {
            int level = Enumerable.Range(0, levels).FirstOrDefault(l => 1 << l == ds, -1);
            if (level < 0)
                throw new ConfigurationException(names.AttentionResolutions,
                    $"attention at downsample factor {ds} is never reached; factors of this model are {string.Join(", ", Enumerable.Range(0, levels).Select(l => 1 << l))}.");
            CheckHeads(level, NumHeads, "num_heads", $"attention at downsample factor {ds}", names);
            ValidateOwnAttention(level, ds, names);
        }
        CheckHeads(levels - 1, NumHeads, "num_heads", "the middle block's attention", names);
    }

    /// <summary>Checks the derived model's own sizes; runs right after the shared positivity checks.</summary>
    private protected virtual void ValidateOwnSizes() { }

    /// <summary>Checks the derived model's own head settings; runs right after the shared head checks.</summary>
    private protected virtual void ValidateOwnHeads(TrunkSettingNames names) { }

    /// <summary>Checks the derived model's extra attention at level <paramref name="level"/> (factor <paramref name="ds"/>).</summary>
    private protected virtual void ValidateOwnAttention(int level, int ds, TrunkSettingNames names) { }

    /// <summary>
    /// Throws unless level <paramref name="level"/>'s channels split into the heads: num_head_channels per head when
    /// set (then the width is named, as the original's create_classifier hard-codes 64 channels per head), else
    /// <paramref name="heads"/> heads (the setting <paramref name="headsFlag"/>).
    /// </summary>
    private protected void CheckHeads(int level, int heads, string headsFlag, string where, TrunkSettingNames names)
    {
        int channels = LevelChannels(level);
        if (NumHeadChannels != -1 && channels % NumHeadChannels != 0)
            throw new ConfigurationException(names.ModelChannels,
                $"q,k,v channels {channels} is not divisible by num_head_channels {NumHeadChannels} ({where}: {SettingText.Ref(names.ModelChannels)} "
                + $"{ModelChannels} × channel_mult {ChannelMult[level]} at resolution {ImageSize >> level}); use a width that makes every "
                + $"attention level a multiple of it, change {SettingText.Ref(names.NumHeadChannels)}, or {SettingText.Ref(names.AttentionResolutions)}.");
        if (NumHeadChannels == -1 && channels % heads != 0)
            throw new ConfigurationException(headsFlag, $"{channels} channels ({where}) are not divisible by {SettingText.Ref(headsFlag)} {heads}.");
    }

    /// <summary>Throws unless <paramref name="value"/> is positive, naming <paramref name="flag"/>.</summary>
    private protected static void Positive(int value, string flag)
    {
        if (value <= 0) throw new ConfigurationException(flag, $"{SettingText.Ref(flag)} must be positive, got {value}.");
    }
}

/// <summary>
/// The settings a trunk's renamed arguments come from, for <see cref="UNetTrunkOptions.Validate(TrunkSettingNames)"/>'s
/// errors. Defaults: the constructor arguments' own names.
/// </summary>
public sealed record TrunkSettingNames
{
    /// <summary>The setting behind <c>model_channels</c> (classifier_width, num_channels).</summary>
    public string ModelChannels { get; init; } = "model_channels";

    /// <summary>The setting behind <c>num_res_blocks</c> (classifier_depth).</summary>
    public string NumResBlocks { get; init; } = "num_res_blocks";

    /// <summary>The setting behind <c>out_channels</c> (num_classes for a classifier).</summary>
    public string OutChannels { get; init; } = "out_channels";

    /// <summary>The setting behind <c>attention_resolutions</c> (classifier_attention_resolutions).</summary>
    public string AttentionResolutions { get; init; } = "attention_resolutions";

    /// <summary>The setting behind <c>channel_mult</c> (classifier_channel_mult: a classifier's is not the diffusion model's).</summary>
    public string ChannelMult { get; init; } = "channel_mult";

    /// <summary>The setting behind <c>num_head_channels</c> (classifier_num_head_channels).</summary>
    public string NumHeadChannels { get; init; } = "num_head_channels";
}
