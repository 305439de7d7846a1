namespace GuidedDiffusion.Models;

/// <summary>
/// The constructor arguments of the original's diffusion <c>UNetModel</c>, one to one (2-D only): the shared trunk (<see cref="UNetTrunkOptions"/>; the network itself is size-agnostic, so
/// image_size is recorded) plus the label embedding and the decoder's heads. <see cref="DiffusionModelConfig.ToOptions"/>
/// derives them from the command-line flags the way <c>create_model</c> does; build this record directly for
/// non-standard models. Defaults are the original constructor's defaults.
/// </summary>
public sealed record UNetOptions : UNetTrunkOptions
{
    /// <summary><c>num_classes</c>: class-conditional via a <c>label_emb</c> embedding when set; null for an
    /// unconditional model. Default null.</summary>
    public int? NumClasses { get; init; }

    /// <summary><c>num_heads_upsample</c>: heads of the decoder's attention blocks; −1 means
    /// <see cref="UNetTrunkOptions.NumHeads"/>. Default −1.</summary>
    public int NumHeadsUpsample { get; init; } = -1;

    /// <summary>The decoder's head count: <see cref="NumHeadsUpsample"/>, or <see cref="UNetTrunkOptions.NumHeads"/> when it is −1.</summary>
    public int EffectiveNumHeadsUpsample => NumHeadsUpsample == -1 ? NumHeads : NumHeadsUpsample;

    /// <summary>A label embedding needs a positive class count.</summary>
    private protected override void ValidateOwnSizes()
    {
        if (NumClasses is { } classes) Positive(classes, "num_classes");
    }

    /// <summary>The decoder's head count must be positive when heads are counted (num_head_channels −1).</summary>
    private protected override void ValidateOwnHeads(TrunkSettingNames names)
    {
        if (NumHeadChannels == -1) Positive(EffectiveNumHeadsUpsample, "num_heads_upsample");
    }

    /// <summary>The decoder's attention at the same level splits into <see cref="EffectiveNumHeadsUpsample"/> heads.</summary>
    private protected override void ValidateOwnAttention(int level, int ds, TrunkSettingNames names) =>
        CheckHeads(level, EffectiveNumHeadsUpsample, "num_heads_upsample", $"decoder attention at downsample factor {ds}", names);
}
