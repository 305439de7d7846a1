namespace GuidedDiffusion.Data.Sources;

/// <summary>
/// Recursive listing of image files in the original's order (<c>_list_image_files_recursively</c>).
/// </summary>
/// <remarks>
/// Entries of each folder are sorted by ordinal order (Python's <c>sorted(os.listdir())</c>:
/// uppercase before lowercase) and sub-folders are expanded at their sorted position. Hidden files are
/// included, as <c>os.listdir</c> includes them. One deliberate difference: the original tests the
/// extension before asking whether an entry is a folder, so a folder named <c>x.png</c> was taken for
/// an image and loading crashed; here folders are always descended into.
/// </remarks>
public static class ImageFolderListing
{
    /// <summary>Extensions accepted, compared case-insensitively.</summary>
    public static IReadOnlyList<string> Extensions { get; } = ["jpg", "jpeg", "png", "gif"];

    /// <summary>Returns the image files under <paramref name="root"/>, as full paths, in the original's order.</summary>
    /// <exception cref="DirectoryNotFoundException"><paramref name="root"/> does not exist.</exception>
    public static IReadOnlyList<string> List(string root)
    {
        if (!Directory.Exists(root))
            throw new DirectoryNotFoundException($"Data folder '{root}' does not exist.");
        var files = new List<string>();
        Walk(root, files);
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

    private static void Walk(string folder, List<string> files)
    {
        var names = Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName).OfType<string>().ToList();
        names.Sort(StringComparer.Ordinal);
        foreach (var name in names)
        {
            var path = Path.Combine(folder, name);
            if (Directory.Exists(path))
                Walk(path, files);
            else if (HasImageExtension(name))
                files.Add(path);
        }
    }
}
