using System.Reflection;
using System.Text.Json;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Checkpoints;

/// <summary>
/// Compares settings a user gave with the ones a checkpoint's sidecar records, setting by setting, so an error
/// can name every one that differs with both values (<c>num_channels 64 (sidecar: 32)</c>) and settings that agree
/// pass. Values are compared as the sidecar spells them.
/// </summary>
public static class SettingAgreement
{
    /// <summary>The setting behind each <see cref="ClassifierConfig"/> property (its own names where the diffusion model's differ).</summary>
    private static readonly IReadOnlyDictionary<string, string> ClassifierSettings = new Dictionary<string, string>
    {
        [nameof(ClassifierConfig.ImageSize)] = "image_size",
        [nameof(ClassifierConfig.InChannels)] = "in_channels",
        [nameof(ClassifierConfig.Width)] = ClassifierConfig.SettingNames.ModelChannels,
        [nameof(ClassifierConfig.Depth)] = ClassifierConfig.SettingNames.NumResBlocks,
        [nameof(ClassifierConfig.AttentionResolutions)] = ClassifierConfig.SettingNames.AttentionResolutions,
        [nameof(ClassifierConfig.UseScaleShiftNorm)] = "classifier_use_scale_shift_norm",
        [nameof(ClassifierConfig.ResblockUpdown)] = "classifier_resblock_updown",
        [nameof(ClassifierConfig.Pool)] = "classifier_pool",
        [nameof(ClassifierConfig.UseFp16)] = "classifier_use_fp16",
        [nameof(ClassifierConfig.NumClasses)] = ClassifierConfig.SettingNames.OutChannels,
        [nameof(ClassifierConfig.NumHeadChannels)] = ClassifierConfig.SettingNames.NumHeadChannels,
        [nameof(ClassifierConfig.ChannelMult)] = ClassifierConfig.SettingNames.ChannelMult,
        [nameof(ClassifierConfig.Dropout)] = "dropout",
    };

    /// <summary>The setting a property of <see cref="ClassifierConfig"/>, <see cref="DiffusionModelConfig"/> or <see cref="DiffusionConfig"/> stands for.</summary>
    /// <param name="record">The record type.</param>
    /// <param name="property">The property name, e.g. <c>NumChannels</c>.</param>
    public static string SettingOf(Type record, string property) =>
        record == typeof(ClassifierConfig) && ClassifierSettings.TryGetValue(property, out var setting)
            ? setting
            : JsonNamingPolicy.SnakeCaseLower.ConvertName(property);

    /// <summary>
    /// Every setting of <paramref name="given"/> that <paramref name="typed"/> names (null: every setting) and whose
    /// value differs from <paramref name="recorded"/>'s: the setting, the value given and the value recorded.
    /// </summary>
    public static IReadOnlyList<(string Setting, string Given, string Recorded)> Differences<T>(T given, T recorded, IReadOnlyCollection<string>? typed)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(given);
        ArgumentNullException.ThrowIfNull(recorded);
        var differences = new List<(string, string, string)>();
        foreach (var property in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetIndexParameters().Length > 0) continue;
            var setting = SettingOf(typeof(T), property.Name);
            if (typed is not null && !typed.Contains(setting)) continue;
            string a = Spell(property.GetValue(given)), b = Spell(property.GetValue(recorded));
            if (a != b) differences.Add((setting, a, b));
        }
        return differences;
    }

    /// <summary>
    /// The differences as one list for a message: <c>num_channels 64 (sidecar: 32), image_size 32 (sidecar: 64)</c>,
    /// each setting marked (<see cref="SettingText.Ref"/>) so a front end spells it as typed; a setting found twice
    /// (learn_sigma is in the model and the process) is listed once.
    /// </summary>
    /// <param name="differences">From <see cref="Differences{T}"/>.</param>
    /// <param name="source">What recorded the values, e.g. "sidecar".</param>
    public static string Describe(IEnumerable<(string Setting, string Given, string Recorded)> differences, string source) =>
        string.Join(", ", differences.DistinctBy(d => d.Setting).Select(d => $"{SettingText.Ref(d.Setting)} {d.Given} ({source}: {d.Recorded})"));

    private static string Spell(object? value)
    {
        if (value is null) return "(unset)";
        if (value is bool b) return b ? "True" : "False";
        var json = JsonSerializer.SerializeToElement(value, value.GetType(), CheckpointManifest.JsonOptions);
        return json.ValueKind == JsonValueKind.String ? json.GetString()! : json.GetRawText();
    }
}
