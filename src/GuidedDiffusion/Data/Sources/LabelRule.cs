namespace GuidedDiffusion.Data.Sources;

/// <summary>Where an image folder's class names come from.</summary>
public enum LabelRule
{
    /// <summary>The file name up to the first <c>_</c> (the original's rule: <c>cat_001.png</c> → <c>cat</c>;
    /// a name without <c>_</c> is its own class, extension included).</summary>
    Prefix,

    /// <summary>The sub-folder directly under the data folder (the <c>root/class/…/image.jpg</c> layout of
    /// ImageNet and torchvision's ImageFolder; for <c>root/class/image.jpg</c> this is the parent folder).</summary>
    Folder,
}

/// <summary>The original's spellings of <see cref="LabelRule"/> (<c>prefix</c>, <c>folder</c>), parsed in one place.</summary>
public static class LabelRules
{
    /// <summary>The spellings, in <see cref="LabelRule"/> order.</summary>
    public static IReadOnlyList<string> Names { get; } = ["prefix", "folder"];

    /// <summary>The rule spelled <paramref name="name"/>.</summary>
    /// <exception cref="ConfigurationException">An unknown spelling (the error names the <c>label_from</c> setting).</exception>
    public static LabelRule Parse(string name) => name switch
    {
        "prefix" => LabelRule.Prefix,
        "folder" => LabelRule.Folder,
        _ => throw new ConfigurationException("label_from", $"unknown rule '{name}'; allowed: {string.Join(", ", Names)}."),
    };
}
