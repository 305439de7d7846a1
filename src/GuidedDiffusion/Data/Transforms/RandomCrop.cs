namespace GuidedDiffusion.Data.Transforms;

/// <summary>
/// The original's <c>random_crop_arr</c>: the short side is resized to a random length in
/// [⌈S/maxCropFraction⌉, ⌈S/minCropFraction⌉], then an S×S window is cut at a random position.
/// </summary>
public static class RandomCrop
{
    /// <summary>Default smallest crop fraction of the original (0.8: the short side grows by up to 25 %).</summary>
    public const double DefaultMinCropFraction = 0.8;

    /// <summary>Default largest crop fraction of the original (1.0).</summary>
    public const double DefaultMaxCropFraction = 1.0;

    /// <summary>
    /// Crops <paramref name="image"/>, drawing in the original's order: short side, crop y, crop x.
    /// </summary>
    /// <param name="image">The decoded RGB image.</param>
    /// <param name="size">Output side S.</param>
    /// <param name="randRange">Python's <c>random.randrange(start, stop)</c>: an integer in [start, stop).
    /// Tests pass recorded draws; the loader passes a per-sample generator.</param>
    /// <param name="minCropFraction">Smallest fraction of the short side kept.</param>
    /// <param name="maxCropFraction">Largest fraction of the short side kept.</param>
    public static RgbImage Apply(
        RgbImage image,
        int size,
        Func<int, int, int> randRange,
        double minCropFraction = DefaultMinCropFraction,
        double maxCropFraction = DefaultMaxCropFraction)
    {
        ArgumentNullException.ThrowIfNull(randRange);
        int minShortSide = (int)Math.Ceiling(size / maxCropFraction);
        int maxShortSide = (int)Math.Ceiling(size / minCropFraction);
        int shortSide = randRange(minShortSide, maxShortSide + 1);

        var resized = ShortSideResize.Apply(image, shortSide);
        int cropY = randRange(0, resized.Height - size + 1);
        int cropX = randRange(0, resized.Width - size + 1);
        return resized.Crop(cropX, cropY, size, size);
    }
}
