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
