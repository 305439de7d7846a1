using System.Globalization;

namespace GuidedDiffusion.Models;

/// <summary>How <see cref="TrunkFlags.ParseList{T}"/> words a bad list: each caller keeps the text its users and tests know.</summary>
internal enum ListErrorStyle
{
    /// <summary>Each value is parsed and checked in turn; the message names the bad value (the classifier's flags).</summary>
    PerValue,

    /// <summary>The whole list is parsed, then checked; the message names the list (the diffusion model's flags).</summary>
    WholeList,
}

/// <summary>
/// What <see cref="ClassifierConfig"/> and <see cref="DiffusionModelConfig"/> resolve alike from the trunk's flags,
/// as <c>create_classifier</c> and <c>create_model</c> do: the per-image-size channel_mult defaults, the
/// comma-separated lists, and the feature-map resolution of each level.
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

    /// <summary>
    /// The channel multipliers: <paramref name="text"/> (a positive, finite comma-separated list) if given, else the
    /// default for <paramref name="imageSize"/>.
    /// </summary>
    /// <exception cref="ConfigurationException">Unparsable values, or an image size without a default.</exception>
    public static IReadOnlyList<double> ResolveChannelMult(string? text, int imageSize, ListErrorStyle style)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            if (DefaultChannelMult.TryGetValue(imageSize, out var mult)) return mult;
            throw new ConfigurationException("channel_mult",
                $"unsupported image size: {imageSize} has no default channel_mult (defaults exist for "
                + $"{string.Join(", ", DefaultChannelMult.Keys)}); pass {SettingText.Ref("channel_mult")}, e.g. {SettingText.Ref("channel_mult")} 1,2,2.");
        }
        return ParseList(text, "channel_mult", s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture),
            v => v > 0 && double.IsFinite(v), style);
    }

    /// <summary>An attention_resolutions list of integers; empty text is no attention.</summary>
    public static int[] ParseResolutions(string text, string flag, ListErrorStyle style, Func<int, bool> valid) =>
        string.IsNullOrWhiteSpace(text)
            ? Array.Empty<int>()
            : ParseList(text, flag, s => int.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture), valid, style);

    /// <summary>The feature-map side of each of <paramref name="levels"/> levels: image_size, /2, /4, ...</summary>
    public static int[] LevelResolutions(int imageSize, int levels) =>
        Enumerable.Range(0, levels).Select(level => imageSize >> level).ToArray();

    /// <summary>Parses a comma-separated list, each value checked by <paramref name="valid"/>, worded as <paramref name="style"/>.</summary>
    /// <exception cref="ConfigurationException">A value that does not parse or is not valid, naming <paramref name="flag"/>.</exception>
    public static T[] ParseList<T>(string text, string flag, Func<string, T> parse, Func<T, bool> valid, ListErrorStyle style)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var values = new T[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            try
            {
                values[i] = parse(parts[i]);
            }
            catch (Exception e) when (e is FormatException or OverflowException)
            {
                throw new ConfigurationException(flag, style == ListErrorStyle.WholeList
                    ? $"{SettingText.Ref(flag)} '{text}' is not a comma-separated list of numbers."
                    : $"{SettingText.Ref(flag)} '{text}': '{parts[i]}' is {(e is FormatException ? "not a number" : "out of range")}.");
            }
            if (style == ListErrorStyle.PerValue && !valid(values[i]))
                throw new ConfigurationException(flag, $"{SettingText.Ref(flag)} '{text}': every value must be positive, got '{parts[i]}'.");
        }
        // The whole-list wording checks only once every value has parsed, as that caller always has.
        if (style == ListErrorStyle.WholeList && !values.All(valid))
            throw new ConfigurationException(flag, $"every multiplier must be positive, got '{text}'.");
        return values;
    }
}
