namespace GuidedDiffusion.Data.Sources;

/// <summary>
/// Recursive listing of image files in the original's order (<c>_list_image_files_recursively</c>).
/// </summary>
/// <remarks>
/// Entries of each folder are sorted by ordinal order (Python's <c>sorted(os.listdir())</c>:
/// uppercase before lowercase) and sub-folders are expanded at their sorted position. Deliberate
/// differences: the original tests the extension before asking whether an entry is a folder, so a folder
/// named <c>x.png</c> was taken for an image and loading crashed; here folders are always descended into.
/// Hidden files and folders (a name starting with '.', e.g. macOS's AppleDouble <c>._x.png</c>) are ignored,
/// as torchvision's ImageFolder conventions and most PIL-based tools do. A folder reached twice through
/// symbolic links (a loop such as <c>loop -> .</c>, or two links to one folder) is listed once, at its first
/// position, so no image is counted twice.
/// </remarks>
public static class ImageFolderListing
{
    /// <summary>Extensions accepted, compared case-insensitively.</summary>
    public static IReadOnlyList<string> Extensions { get; } = ["jpg", "jpeg", "png", "gif"];

    /// <summary>Returns the image files under <paramref name="root"/>, as full paths, in the original's order.</summary>
    /// <exception cref="DirectoryNotFoundException"><paramref name="root"/> does not exist or is a file.</exception>
    public static IReadOnlyList<string> List(string root)
    {
        if (File.Exists(root))
            throw new DirectoryNotFoundException($"Data folder '{root}' is a file, not a folder; pass the folder that holds the images.");
        if (!Directory.Exists(root))
            throw new DirectoryNotFoundException($"Data folder '{root}' does not exist.");
        var files = new List<string>();
        var visited = new HashSet<string>(StringComparer.Ordinal);
        Walk(root, files, visited);
        return files;
    }

    /// <summary>True when <paramref name="fileName"/> has one of the <see cref="Extensions"/> (the text after the last dot).</summary>
    public static bool HasImageExtension(string fileName)
    {
        int dot = fileName.LastIndexOf('.');
        if (dot < 0) return false;
        var ext = fileName[(dot + 1)..];
        return Extensions.Any(e => string.Equals(e, ext, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>True for names the listing skips: hidden entries (leading '.').</summary>
    public static bool IsHidden(string name) => name.StartsWith('.');

    private static void Walk(string folder, List<string> files, HashSet<string> visited)
    {
        if (!visited.Add(Resolve(Path.GetFullPath(folder)))) return;
        var names = Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName).OfType<string>()
            .Where(n => !IsHidden(n)).ToList();
        names.Sort(StringComparer.Ordinal);
        foreach (var name in names)
        {
            var path = Path.Combine(folder, name);
            if (Directory.Exists(path))
                Walk(path, files, visited);
            else if (HasImageExtension(name))
                files.Add(path);
        }
    }

    /// <summary>A folder's resolved location: every symbolic link on its path replaced by its final target.</summary>
    private static string Resolve(string path)
    {
        var info = new DirectoryInfo(path);
        var here = info.Parent is null ? info.FullName : Path.Combine(Resolve(info.Parent.FullName), info.Name);
        if (info.LinkTarget is null) return Path.TrimEndingDirectorySeparator(here);
        try
        {
            var target = info.ResolveLinkTarget(returnFinalTarget: true);
            return target is null ? here : Resolve(Path.GetFullPath(target.FullName));
        }
        catch (IOException)
        {
            return here; // a link cycle (a -> b -> a) that the OS refuses to resolve: Directory.Exists was false anyway
        }
    }
}
