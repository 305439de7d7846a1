namespace GuidedDiffusion.Data.Sources;

/// <summary>
/// Grayscale images and labels from a pair of IDX files (MNIST, Fashion-MNIST), held in memory and
/// expanded to RGB (R = G = B, as PIL's convert("RGB") of an "L" image), optionally padded with black.
/// </summary>
public sealed class IdxImageSource : IImageSource
{
    private readonly byte[] _pixels;
    private readonly byte[] _labels;
    private readonly int _height, _width, _start, _padTo;
    private readonly string _imagesPath;

    private IdxImageSource(string imagesPath, byte[] pixels, byte[] labels, int height, int width, int start, int count, int padTo, ClassMap classes)
    {
        _imagesPath = imagesPath;
        _pixels = pixels;
        _labels = labels;
        _height = height;
        _width = width;
        _start = start;
        Count = count;
        _padTo = padTo;
        Classes = classes;
    }

    /// <summary>Reads an images file ([N, H, W]) and a labels file ([N]).</summary>
    /// <param name="imagesPath">IDX images, plain or .gz.</param>
    /// <param name="labelsPath">IDX labels, plain or .gz.</param>
    /// <param name="classes">Class names by label; default "0", "1", … up to the largest label.</param>
    /// <param name="padTo">When positive, each image is centred on a black padTo×padTo canvas (28 → 32 keeps digits unstretched).</param>
    /// <exception cref="DatasetException">Malformed files, mismatched counts, or labels outside <paramref name="classes"/>.</exception>
    public static IdxImageSource Open(string imagesPath, string labelsPath, ClassMap? classes = null, int padTo = 0)
    {
        var images = IdxFile.Read(imagesPath);
        var labels = IdxFile.Read(labelsPath);
        if (images.Shape.Count != 3)
            throw new DatasetException($"IDX images '{imagesPath}' should have 3 dimensions [N, H, W], has [{string.Join(", ", images.Shape)}].");
        if (labels.Shape.Count != 1 || labels.Shape[0] != images.Shape[0])
            throw new DatasetException($"IDX labels '{labelsPath}' hold [{string.Join(", ", labels.Shape)}] labels for {images.Shape[0]} images in '{imagesPath}'.");
        int maxLabel = labels.Data.Length == 0 ? 0 : labels.Data.Max();
        classes ??= new ClassMap(Enumerable.Range(0, maxLabel + 1).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        if (maxLabel >= classes.Count)
            throw new DatasetException($"IDX labels '{labelsPath}' contain label {maxLabel}, but only {classes.Count} classes are named.");
        if (padTo > 0 && (padTo < images.Shape[1] || padTo < images.Shape[2]))
            throw new ArgumentOutOfRangeException(nameof(padTo), $"Cannot pad {images.Shape[2]}×{images.Shape[1]} images to {padTo}.");
        return new IdxImageSource(imagesPath, images.Data, labels.Data, images.Shape[1], images.Shape[2], 0, images.Shape[0], padTo, classes);
    }

    /// <summary>A view of <paramref name="count"/> consecutive images starting at <paramref name="start"/>.</summary>
    public IdxImageSource Slice(int start, int count)
    {
        if (start < 0 || count < 0 || start + count > Count)
            throw new ArgumentOutOfRangeException(nameof(start), $"Slice [{start}, {start + count}) is outside [0, {Count}).");
        return new IdxImageSource(_imagesPath, _pixels, _labels, _height, _width, _start + start, count, _padTo, Classes);
    }

    /// <inheritdoc/>
    public int Count { get; }

    /// <inheritdoc/>
    public ClassMap Classes { get; }

    /// <inheritdoc/>
    public int LabelOf(int index) => _labels[_start + CheckIndex(index)];

    /// <inheritdoc/>
    public string NameOf(int index) => $"{_imagesPath}#{_start + CheckIndex(index)}";

    /// <inheritdoc/>
    public RgbImage Load(int index)
    {
        int plane = _height * _width;
        int offset = (_start + CheckIndex(index)) * plane;
        var image = new RgbImage(_width, _height);
        for (int i = 0; i < plane; i++)
        {
            byte v = _pixels[offset + i];
            image.Pixels[3 * i] = v;
            image.Pixels[3 * i + 1] = v;
            image.Pixels[3 * i + 2] = v;
        }
        return _padTo > 0 ? image.PadTo(_padTo, _padTo) : image;
    }

    private int CheckIndex(int index) =>
        (uint)index < (uint)Count ? index : throw new ArgumentOutOfRangeException(nameof(index), $"Index {index} is outside [0, {Count}).");
}
