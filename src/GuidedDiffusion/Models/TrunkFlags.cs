namespace GuidedDiffusion.Models;

/// <summary>
/// What <see cref="ClassifierConfig"/> and <see cref="DiffusionModelConfig"/> resolve alike from the trunk's flags,
/// as <c>create_classifier</c> and <c>create_model</c> do: the per-image-size channel_mult defaults and the
/// feature-map resolution of each level.
/// </summary>
internal static class TrunkFlags
{
    /// <summary>The per-size channel_mult defaults; see <see cref="ClassifierConfig.DefaultChannelMult"/>.</summary>
    public static IReadOnlyDictionary<int, double[]> DefaultChannelMult { get; } = new Dictionary<int, double[]>
    {
        [28] = new double[] { 1, 2, 2 },
        [32] = new double[] { 1, 2, 2 },
        [64] = new double[] { 1, 2, 3, 4 },
        [128] = new double[] { 1, 1, 2, 3, 4 },
        [256] = new double[] { 1, 1, 2, 2, 4, 4 },
        [512] = new double[] { 0.5, 1, 1, 2, 2, 4, 4 },
    };

    /// <summary>The channel multipliers: <paramref name="mult"/> (positive, finite) if given, else the default for <paramref name="imageSize"/>.</summary>
    /// <param name="mult">The multipliers given (null or empty: the image size's default).</param>
    /// <param name="imageSize">The image side.</param>
    /// <param name="setting">The channel_mult setting named in errors (a classifier's is classifier_channel_mult).</param>
    /// <exception cref="ConfigurationException">A value that is not positive, or an image size without a default.</exception>
    public static IReadOnlyList<double> ResolveChannelMult(SettingList<double>? mult, int imageSize, string setting = "channel_mult")
    {
        if (imageSize <= 0) throw new ConfigurationException("image_size", $"{SettingText.Ref("image_size")} must be positive, got {imageSize}.");
        if (mult is null || mult.Count == 0)
        {
            if (DefaultChannelMult.TryGetValue(imageSize, out var defaults)) return defaults;
            throw new ConfigurationException(setting,
                $"unsupported image size: {imageSize} has no default channel_mult (defaults exist for "
                + $"{string.Join(", ", DefaultChannelMult.Keys)}); pass {SettingText.Ref(setting)}, e.g. {SettingText.Ref(setting)} 1,2,2.");
        }
        mult.CheckPositive(setting);
        return mult;
    }

    /// <summary>The feature-map side of each of <paramref name="levels"/> levels: image_size, /2, /4, ...</summary>
    public static int[] LevelResolutions(int imageSize, int levels) =>
        Enumerable.Range(0, levels).Select(level => imageSize >> level).ToArray();
}
