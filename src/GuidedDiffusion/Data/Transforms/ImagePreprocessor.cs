
namespace GuidedDiffusion.Data.Transforms;

/// <summary>
/// The per-image part of the original's <c>ImageDataset.__getitem__</c>: random or centre crop, then a
/// flip with probability 0.5, drawing in the original's order (three randrange for the crop, then one
/// random() for the flip).
/// </summary>
public static class ImagePreprocessor
{
    /// <summary>Crops (and maybe flips) <paramref name="image"/> to an S×S uint8 image.</summary>
    public static RgbImage Apply(RgbImage image, int size, bool randomCrop, bool randomFlip, SampleRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var cropped = randomCrop ? RandomCrop.Apply(image, size, random.RandRange) : CenterCrop.Apply(image, size);
        return randomFlip && random.NextDouble() < 0.5 ? HorizontalFlip.Apply(cropped) : cropped;
    }
}
