namespace GuidedDiffusion.Data.Sources;

/// <summary>
/// An indexed, labelled collection of images. <see cref="Load"/> must be safe to call from several
/// threads at once (the loader's workers do).
/// </summary>
public interface IImageSource
{
    /// <summary>Number of images.</summary>
    int Count { get; }

    /// <summary>The class names and their labels.</summary>
    ClassMap Classes { get; }

    /// <summary>Label (index into <see cref="Classes"/>) of image <paramref name="index"/>.</summary>
    int LabelOf(int index);

    /// <summary>A name for image <paramref name="index"/> in messages: its path, or file#record for IDX data.</summary>
    string NameOf(int index);

    /// <summary>Decodes image <paramref name="index"/> to RGB.</summary>
    /// <exception cref="Decoding.ImageDecodeException">The image cannot be read or decoded.</exception>
    RgbImage Load(int index);

    /// <summary>
    /// Files left out when the source was opened because they could not be read (<c>--skip_bad_images</c>), each
    /// with the decoder's error (its <see cref="Decoding.ImageDecodeException.Path"/> and reason).
    /// </summary>
    IReadOnlyList<Decoding.ImageDecodeException> Skipped => [];

    /// <summary>Warning lines from opening the source (a class that lost all its images), for the run log.</summary>
    IReadOnlyList<string> Warnings => [];
}
