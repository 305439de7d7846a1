namespace GuidedDiffusion.Models;

/// <summary>
/// The classifier's architecture flags with the original's defaults (<c>classifier_defaults()</c> in
/// script_util.py), plus the two values the original hard-codes (1000 classes, 64 channels per head) and an
/// explicit <c>channel_mult</c> so other image sizes and class counts work. <see cref="ToOptions"/> turns it into
/// <see cref="EncoderUNetOptions"/> the way <c>create_classifier</c> does.
/// </summary>
public sealed record ClassifierConfig
{
    /// <summary><c>image_size</c>: side of the square input. Default 64.</summary>
    public int ImageSize { get; init; } = 64;

    /// <summary><c>in_channels</c>: image channels (the original hard-codes 3). Default 3.</summary>
    public int InChannels { get; init; } = 3;

    /// <summary><c>classifier_width</c>: base channel count (model_channels). Default 128.</summary>
    public int Width { get; init; } = 128;

    /// <summary><c>classifier_depth</c>: ResBlocks per level (num_res_blocks). Default 2.</summary>
    public int Depth { get; init; } = 2;

    /// <summary><c>classifier_attention_resolutions</c>: feature-map resolutions (not factors) that get attention;
    /// each becomes the downsample factor image_size / resolution. Default 32,16,8.</summary>
    public SettingList<int> AttentionResolutions { get; init; } = [32, 16, 8];

    /// <summary><c>classifier_use_scale_shift_norm</c>: FiLM-style timestep conditioning. Default true.</summary>
    public bool UseScaleShiftNorm { get; init; } = true;

    /// <summary><c>classifier_resblock_updown</c>: downsample with ResBlocks. Default true.</summary>
    public bool ResblockUpdown { get; init; } = true;

    /// <summary><c>classifier_pool</c>: adaptive, attention, spatial or spatial_v2. Default "attention".</summary>
    public ClassifierPool Pool { get; init; } = ClassifierPool.Attention;

    /// <summary><c>classifier_use_fp16</c>: train with a float16 trunk. The model is always built in float32;
    /// the trainer converts it (<see cref="EncoderUNet.ConvertToFp16"/>) as the original's trainer does. Default false.</summary>
    public bool UseFp16 { get; init; }

    /// <summary><c>classifier_use_checkpoint</c> (ours; the original's <c>create_classifier</c> never passes
    /// use_checkpoint): gradient checkpointing of the ResBlocks and AttentionBlocks
    /// (<see cref="UNetTrunkOptions.UseCheckpoint"/>): less activation memory for a second forward pass in the backward;
    /// outputs and gradients are unchanged. Default false. A sidecar records it only when on, so the sidecars written
    /// before it existed read back byte for byte.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public bool UseCheckpoint { get; init; }

    /// <summary><c>num_classes</c>: number of logits (the original hard-codes 1000); null: not decided yet (training
    /// takes the data's class count, loading the checkpoint's; spelled 0 on the command line). Default 1000.</summary>
    public int? NumClasses { get; init; } = 1000;

    /// <summary><c>num_head_channels</c>: channels per attention head (the original hard-codes 64). Default 64.</summary>
    public int NumHeadChannels { get; init; } = 64;

    /// <summary><c>channel_mult</c>: per-level multipliers, e.g. 1,2,3,4. Null or empty: the default for
    /// <see cref="ImageSize"/> (see <see cref="DefaultChannelMult"/>). Default null.</summary>
    public SettingList<double>? ChannelMult { get; init; }

    /// <summary><c>dropout</c>: dropout probability in the ResBlocks. Default 0.</summary>
    public double Dropout { get; init; }

    /// <summary>
    /// The per-size channel_mult defaults: the original's for 64, 128, 256 and 512, and ours for 28 (MNIST) and
    /// 32 (CIFAR): 1,2,2 — three levels (32→16→8, or 28→14→7), so attention at 16 and 8 (or 14 and 7) and a
    /// small attention pool, with every level a multiple of 64 channels at the default width.
    /// </summary>
    public static IReadOnlyDictionary<int, double[]> DefaultChannelMult => TrunkFlags.DefaultChannelMult;

    /// <summary>The channel multipliers: <see cref="ChannelMult"/> if given, else the default for the image size.</summary>
    /// <exception cref="ConfigurationException">A value that is not positive, or an image size without a default.</exception>
    public IReadOnlyList<double> ResolveChannelMult() => TrunkFlags.ResolveChannelMult(ChannelMult, ImageSize, SettingNames.ChannelMult);

    /// <summary>
    /// The attention downsample factors image_size // resolution for each of <see cref="AttentionResolutions"/>
    /// (the original's <c>attention_ds</c>), e.g. 2, 4, 8 for 32,16,8 at 64 pixels, keeping only those a level
    /// reaches: as in the original, a resolution no level has simply adds no attention block
    /// (see <see cref="AttentionWarnings"/>).
    /// </summary>
    /// <exception cref="ConfigurationException">A resolution that is not a positive integer.</exception>
    public IReadOnlyList<int> ResolveAttentionDownsampleFactors() =>
        AttentionFactors().Where(f => f.Reached).Select(f => f.Factor).ToList();

    /// <summary>
    /// One warning line per attention resolution that no level has: either it adds no attention block (no level
    /// reaches it) or, as the original's floor division image_size // resolution does, it lands on another
    /// level. Both are accepted as the original accepts them, so a classifier trained with such flags still loads.
    /// The setting is marked (<see cref="SettingText.Ref"/>): print a line through <see cref="RunContext.Show"/>.
    /// </summary>
    public IReadOnlyList<string> AttentionWarnings()
    {
        var reachable = TrunkFlags.LevelResolutions(ImageSize, ResolveChannelMult().Count);
        return AttentionFactors().Where(f => !reachable.Contains(f.Resolution))
            .Select(f => $"warning: {SettingText.Ref("classifier_attention_resolutions")} {f.Resolution} is never reached at image_size {ImageSize} "
                + $"(level resolutions {string.Join(", ", reachable)}); "
                + (f.Reached
                    ? $"as in the original (image_size // {f.Resolution} = {f.Factor}), it puts attention at resolution {ImageSize / f.Factor}."
                    : "it adds no attention block, as in the original."))
            .ToList();
    }

    private IEnumerable<(int Resolution, int Factor, bool Reached)> AttentionFactors()
    {
        int levels = ResolveChannelMult().Count;
        AttentionResolutions.CheckPositive("classifier_attention_resolutions");
        foreach (int r in AttentionResolutions)
        {
            // The original: attention_ds.append(image_size // int(res)); a level gets attention when its ds matches.
            int factor = ImageSize / r;
            bool reached = factor > 0 && (factor & (factor - 1)) == 0 && (int)Math.Log2(factor) < levels;
            yield return (r, factor, reached);
        }
    }

    /// <summary>
    /// Checks every flag, a null <see cref="NumClasses"/> included (nothing else depends on the class count, so a
    /// training job can check everything before it lists the data that gives it); throws
    /// <see cref="ConfigurationException"/> naming the first bad one.
    /// </summary>
    public void Validate() => Build(NumClasses ?? 1);

    /// <summary>The <c>EncoderUNetModel</c> arguments these flags stand for (validated).</summary>
    /// <exception cref="ConfigurationException">Any flag that cannot work, or an unset <see cref="NumClasses"/>, named in the message.</exception>
    public EncoderUNetOptions ToOptions() => Build(NumClasses
        ?? throw new ConfigurationException(SettingNames.OutChannels, $"{SettingText.Ref(SettingNames.OutChannels)} is not set: the classifier's number of outputs must be given."));

    private EncoderUNetOptions Build(int numClasses)
    {
        var options = new EncoderUNetOptions
        {
            ImageSize = ImageSize,
            InChannels = InChannels,
            ModelChannels = Width,
            OutChannels = numClasses,
            NumResBlocks = Depth,
            AttentionResolutions = ResolveAttentionDownsampleFactors(),
            Dropout = Dropout,
            ChannelMult = ResolveChannelMult(),
            NumHeadChannels = NumHeadChannels,
            UseScaleShiftNorm = UseScaleShiftNorm,
            ResblockUpdown = ResblockUpdown,
            Pool = Pool,
            UseCheckpoint = UseCheckpoint,
        };
        options.Validate(SettingNames);
        return options;
    }

    /// <summary>
    /// The classifier's settings behind the trunk's arguments, as its errors name them. channel_mult,
    /// num_head_channels and num_classes are the classifier's own (<c>classifier_</c>), never the diffusion model's of
    /// the same name: each front end spells them its way (classifier-train's <c>--channel_mult</c>,
    /// classifier-sample's <c>--classifier_channel_mult</c>).
    /// </summary>
    public static TrunkSettingNames SettingNames { get; } = new()
    {
        ModelChannels = "classifier_width",
        NumResBlocks = "classifier_depth",
        OutChannels = "classifier_num_classes",
        AttentionResolutions = "classifier_attention_resolutions",
        ChannelMult = "classifier_channel_mult",
        NumHeadChannels = "classifier_num_head_channels",
    };
}
