using System.Text.Json.Serialization;

namespace GuidedDiffusion.Data.Sources;

/// <summary>Where an image folder's class names come from (<c>label_from</c>: <c>prefix</c> or <c>folder</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<LabelRule>))]
public enum LabelRule
{
    /// <summary>The file name up to the first <c>_</c> (the original's rule: <c>cat_001.png</c> → <c>cat</c>;
    /// a name without <c>_</c> is its own class, extension included).</summary>
    [JsonStringEnumMemberName("prefix")]
    Prefix,

    /// <summary>The sub-folder directly under the data folder (the <c>root/class/…/image.jpg</c> layout of
    /// ImageNet and torchvision's ImageFolder; for <c>root/class/image.jpg</c> this is the parent folder).</summary>
    [JsonStringEnumMemberName("folder")]
    Folder,
}

/// <summary>The original's spellings of <see cref="LabelRule"/> (<c>prefix</c>, <c>folder</c>), parsed in one place.</summary>
public static class LabelRules
{
    /// <summary>The spellings, in <see cref="LabelRule"/> order.</summary>
    public static IReadOnlyList<string> Names => Spellings.Of<LabelRule>();

    /// <summary>The rule spelled <paramref name="name"/>.</summary>
    /// <exception cref="ConfigurationException">An unknown spelling (the error names the <c>label_from</c> setting).</exception>
    public static LabelRule Parse(string name) => Spellings.Parse<LabelRule>(name, "label_from", "rule");
}
