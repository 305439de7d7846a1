namespace GuidedDiffusion.Models;

/// <summary>
/// The constructor arguments of the original's <c>EncoderUNetModel</c>, one to one (2-D only): the shared trunk (<see cref="UNetTrunkOptions"/>) plus the pooling head.
/// <see cref="ClassifierConfig.ToOptions"/> derives them from the command-line flags the way
/// <c>create_classifier</c> does; build this record directly for non-standard models (the small reference cases).
/// Defaults are the original constructor's defaults.
/// </summary>
public sealed record EncoderUNetOptions : UNetTrunkOptions
{
    /// <summary><c>pool</c>: the head. Default <see cref="ClassifierPool.Adaptive"/>.</summary>
    public ClassifierPool Pool { get; init; } = ClassifierPool.Adaptive;

    /// <summary>The attention pool needs a positive <c>num_head_channels</c> (channels per head).</summary>
    private protected override void ValidateOwnHeads(TrunkSettingNames names)
    {
        if (Pool == ClassifierPool.Attention && NumHeadChannels == -1)
            throw new ConfigurationException(names.NumHeadChannels, $"pool 'attention' needs {SettingText.Ref(names.NumHeadChannels)} (channels per head); -1 is not allowed.");
    }
}
