using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Sources;

namespace GuidedDiffusion.Evaluation;

/// <summary>The rules the evaluation jobs share for their data and output folder.</summary>
internal static class JobInputs
{
    /// <summary>
    /// The image folder <paramref name="dataDir"/> (labels from the file-name prefix), or when it is empty the
    /// Fashion-MNIST demo's validation split, said in a line on <paramref name="run"/>'s output.
    /// </summary>
    /// <param name="dataDir">The folder given (empty: the demo).</param>
    /// <param name="run">The run: its decode limit, and where the line goes.</param>
    /// <param name="images">What the demo's images are called in that line (e.g. "grey images").</param>
    public static IImageSource ImagesOrDemo(string dataDir, RunContext run, string images = "images")
    {
        if (dataDir.Length > 0) return new ImageFolderSource(dataDir, decodeLimit: ImageDecodeLimit.Of(run));
        var demo = FashionMnistDemo.Load().Validation;
        run.Log($"No {SettingText.Ref("data_dir")} given: the Fashion-MNIST demo's validation split ({demo.Count} {images}).");
        return demo;
    }

    /// <summary><paramref name="logDir"/>, or when it is empty the folder of <paramref name="checkpoint"/>.</summary>
    public static string OutputFolder(string logDir, string checkpoint) =>
        logDir.Length > 0 ? logDir : Path.GetDirectoryName(Path.GetFullPath(checkpoint))!;
}
