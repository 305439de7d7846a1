namespace GuidedDiffusion.Data.Sources;

/// <summary>
/// The small demo dataset shipped in the repository (<c>data/fashion-mnist</c>, the 10,000-image
/// Fashion-MNIST test set): 9,000 training and 1,000 validation images, 28×28 grayscale centred on a
/// black 32×32 canvas (pixels −1 after normalisation, not stretched), 10 classes.
/// </summary>
public static class FashionMnistDemo
{
    /// <summary>Side of the demo images.</summary>
    public const int ImageSize = 32;

    /// <summary>Images in the training split (the first ones of the file).</summary>
    public const int TrainCount = 9000;

    /// <summary>Images in the validation split (the last ones).</summary>
    public const int ValidationCount = 1000;

    /// <summary>The folder name looked for.</summary>
    public const string FolderName = "fashion-mnist";

    private const string ImagesFile = "t10k-images-idx3-ubyte.gz";
    private const string LabelsFile = "t10k-labels-idx1-ubyte.gz";

    /// <summary>Fashion-MNIST's class names, by label.</summary>
    public static ClassMap Classes { get; } = new(
    [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]);

    /// <summary>
    /// Finds the data folder: <c>data/fashion-mnist</c> next to the application (the library copies it to
    /// every output), else in the nearest parent of the application folder or of the current directory.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">Not found; the message lists where it looked.</exception>
    public static string FindDataDirectory()
    {
        var looked = new List<string>();
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "data", FolderName);
                if (File.Exists(Path.Combine(candidate, ImagesFile)) && File.Exists(Path.Combine(candidate, LabelsFile)))
                    return candidate;
                looked.Add(candidate);
            }
        }
        throw new DirectoryNotFoundException(
            $"The Fashion-MNIST demo data ({ImagesFile}, {LabelsFile}) was not found in: {string.Join(", ", looked.Distinct())}.");
    }

    /// <summary>Loads the demo data from <paramref name="directory"/> (default: <see cref="FindDataDirectory"/>).</summary>
    public static DemoDataset Load(string? directory = null)
    {
        directory ??= FindDataDirectory();
        var all = IdxImageSource.Open(
            Path.Combine(directory, ImagesFile), Path.Combine(directory, LabelsFile), Classes, padTo: ImageSize);
        if (all.Count != TrainCount + ValidationCount)
            throw new DatasetException($"'{directory}' holds {all.Count} images; the demo split expects {TrainCount + ValidationCount}.");
        return new DemoDataset(all.Slice(0, TrainCount), all.Slice(TrainCount, ValidationCount), Classes);
    }
}

/// <summary>A training and a validation source sharing one class map.</summary>
/// <param name="Train">Training images.</param>
/// <param name="Validation">Validation images.</param>
/// <param name="Classes">Class names by label.</param>
public sealed record DemoDataset(IImageSource Train, IImageSource Validation, ClassMap Classes);
