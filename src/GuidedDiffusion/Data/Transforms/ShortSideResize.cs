using GuidedDiffusion.Data.Resampling;

namespace GuidedDiffusion.Data.Transforms;

/// <summary>
/// The resize shared by the original's <c>center_crop_arr</c> and <c>random_crop_arr</c>: halve with a
/// BOX filter while the short side is at least twice the target (the original's hand-made stand-in
/// for Pillow's <c>reducing_gap</c>), then BICUBIC-resize so that the short side equals the target.
/// </summary>
public static class ShortSideResize
{
    /// <summary>Resizes so that <c>min(width, height)</c> becomes <paramref name="shortSide"/>.</summary>
    /// <param name="image">The decoded RGB image.</param>
    /// <param name="shortSide">Target length of the short side.</param>
    /// <param name="onHalving">Optional observer of each BOX-halved intermediate (for tests and diagnostics).</param>
    public static RgbImage Apply(RgbImage image, int shortSide, Action<RgbImage>? onHalving = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(shortSide);
        while (Math.Min(image.Width, image.Height) >= 2 * shortSide)
        {
            image = PillowResize.Resize(image, image.Width / 2, image.Height / 2, ResampleFilter.Box);
            onHalving?.Invoke(image);
        }

        double scale = (double)shortSide / Math.Min(image.Width, image.Height);
        // Python's round() rounds halves to even; the doubles are the same as in Python.
        int width = (int)Math.Round(image.Width * scale, MidpointRounding.ToEven);
        int height = (int)Math.Round(image.Height * scale, MidpointRounding.ToEven);
        return PillowResize.Resize(image, width, height, ResampleFilter.Bicubic);
    }
}
