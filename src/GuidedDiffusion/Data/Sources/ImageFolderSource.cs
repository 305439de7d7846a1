using GuidedDiffusion.Data.Decoding;

namespace GuidedDiffusion.Data.Sources;

/// <summary>A folder of JPEG/PNG/GIF files, listed recursively, labelled by file-name prefix or folder.</summary>
public sealed class ImageFolderSource : IImageSource
{
    private readonly string[] _files;
    private readonly int[] _labels;
    private readonly ImageDecodeLimit _limit;

    /// <summary>
    /// Lists <paramref name="root"/> and labels its files. Pass the training set's <see cref="ClassMap"/> as
    /// <paramref name="classes"/> for a validation folder, so that both use the same label numbering
    /// (the original renumbered each folder on its own).
    /// </summary>
    /// <param name="root">The data folder.</param>
    /// <param name="labelFrom">Where class names come from.</param>
    /// <param name="classes">A fixed class map (validation); when null, one is built from the names found.</param>
    /// <param name="skipBadImages">
    /// <c>--skip_bad_images</c>: decode every listed file once before the class map is built and leave out those
    /// that fail (<see cref="Skipped"/>), so that a class comes only from images that were actually read. A full
    /// decode, not a header check: a truncated file (the commonest damage) has a valid header and fails only there.
    /// </param>
    /// <param name="decodeLimit">The decompression-bomb limit of the run (null: <see cref="ImageDecodeLimit.Default"/>).</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="DatasetException">No (readable) images, a single class, or a class missing from <paramref name="classes"/>.</exception>
    public ImageFolderSource(string root, LabelRule labelFrom = LabelRule.Prefix, ClassMap? classes = null, bool skipBadImages = false,
        ImageDecodeLimit? decodeLimit = null)
    {
        Root = Path.GetFullPath(root);
        _limit = decodeLimit ?? ImageDecodeLimit.Default;
        LabelFrom = labelFrom;
        _files = ImageFolderListing.List(Root).ToArray();
        if (_files.Length == 0)
            throw new DatasetException(DescribeEmpty(Root));

        var names = _files.Select(f => ClassNameOf(f)).ToArray();
        if (skipBadImages)
            (_files, names) = KeepReadable(names, classes is null);
        if (classes is null)
        {
            classes = ClassMap.FromSortedDistinct(names);
            if (classes.Count < 2)
                throw new DatasetException(
                    $"Data folder '{Root}' has {_files.Length} images but only one class, '{classes.Names[0]}' " +
                    $"(labels from the {(labelFrom == LabelRule.Prefix ? "file-name prefix before '_'" : "sub-folder name")}); a classifier needs at least two.");
        }
        Classes = classes;
        _labels = new int[_files.Length];
        for (int i = 0; i < _files.Length; i++)
        {
            if (!classes.TryGetIndex(names[i], out _labels[i]))
                throw new DatasetException(
                    $"'{_files[i]}' has class '{names[i]}', which is not among the {classes.Count} training classes ({classes.Describe()}).");
        }
    }

    /// <summary>The data folder, as a full path.</summary>
    public string Root { get; }

    /// <summary>The labelling rule used.</summary>
    public LabelRule LabelFrom { get; }

    /// <summary>The listed files, full paths, in listing order.</summary>
    public IReadOnlyList<string> Files => _files;

    /// <inheritdoc/>
    public int Count => _files.Length;

    /// <inheritdoc/>
    public ClassMap Classes { get; }

    /// <inheritdoc/>
    public int LabelOf(int index) => _labels[index];

    /// <inheritdoc/>
    public string NameOf(int index) => _files[index];

    /// <inheritdoc/>
    public RgbImage Load(int index) => ImageDecoder.Decode(_files[index], _limit);

    /// <inheritdoc/>
    public IReadOnlyList<ImageDecodeException> Skipped { get; private set; } = [];

    /// <inheritdoc/>
    public IReadOnlyList<string> Warnings { get; private set; } = [];

    /// <summary>
    /// Decodes each listed file (in parallel, results in listing order) and keeps the readable ones with their
    /// class names; records the others in <see cref="Skipped"/> and, when the class map is built from this folder
    /// (<paramref name="namesMakeClasses"/>), one warning per class that has no readable file left.
    /// </summary>
    private (string[] Files, string[] Names) KeepReadable(string[] names, bool namesMakeClasses)
    {
        var errors = new ImageDecodeException?[_files.Length];
        Parallel.For(0, _files.Length, i =>
        {
            try { ImageDecoder.Decode(_files[i], _limit); }
            catch (ImageDecodeException e) { errors[i] = e; }
        });
        var kept = Enumerable.Range(0, _files.Length).Where(i => errors[i] is null).ToArray();
        Skipped = errors.OfType<ImageDecodeException>().ToArray();
        if (kept.Length == 0)
            throw new DatasetException($"Data folder '{Root}' has {_files.Length} images and none of them could be read (first: {Skipped[0].Message}).");
        if (namesMakeClasses)
        {
            var readable = kept.Select(i => names[i]).ToHashSet(StringComparer.Ordinal);
            Warnings = names.Distinct(StringComparer.Ordinal).Where(n => !readable.Contains(n)).Order(StringComparer.Ordinal)
                .Select(n => $"warning: class '{n}' has no readable image ({names.Count(m => m == n)} skipped) and is left out of the class map.")
                .ToArray();
        }
        return (kept.Select(i => _files[i]).ToArray(), kept.Select(i => names[i]).ToArray());
    }

    private string ClassNameOf(string file)
    {
        if (LabelFrom == LabelRule.Prefix)
        {
            var name = Path.GetFileName(file);
            int underscore = name.IndexOf('_');
            return underscore < 0 ? name : name[..underscore];
        }
        var relative = Path.GetRelativePath(Root, file);
        int separator = relative.IndexOf(Path.DirectorySeparatorChar);
        if (separator < 0)
            throw new DatasetException(
                $"'{file}' lies directly in the data folder '{Root}'; labels from folders need one sub-folder per class (root/class/image.jpg).");
        return relative[..separator];
    }

    private static string DescribeEmpty(string root)
    {
        var entries = Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).ToList();
        if (entries.Count == 0)
            return $"Data folder '{root}' is empty.";
        var samples = entries.Take(5).Select(e => Path.GetRelativePath(root, e));
        return $"Data folder '{root}' has {entries.Count} entries but no {string.Join("/", ImageFolderListing.Extensions)} images " +
               $"(found e.g. {string.Join(", ", samples)}).";
    }
}
