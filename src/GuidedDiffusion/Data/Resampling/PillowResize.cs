namespace GuidedDiffusion.Data.Resampling;

/// <summary>
/// <c>Image.resize((w, h), filter)</c> of Pillow 9.4 for RGB images, bit for bit: the same kernel
/// windows, 22-bit fixed-point weights, uint8 intermediate and pass order as <c>ImagingResample</c>.
/// </summary>
public static class PillowResize
{
    /// <summary>Resizes <paramref name="image"/> to <paramref name="width"/>×<paramref name="height"/>.</summary>
    public static RgbImage Resize(RgbImage image, int width, int height, ResampleFilter filter)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(filter);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);

        // Image.resize returns a copy, without filtering, when the size does not change.
        if (width == image.Width && height == image.Height)
            return new RgbImage(width, height, (byte[])image.Pixels.Clone());

        bool needHorizontal = width != image.Width;
        bool needVertical = height != image.Height;
        var vertical = KernelMap.Create(image.Height, height, filter);

        // Pillow filters horizontally first and only the source rows the vertical pass will read.
        int firstRow = vertical.Start[0];
        int lastRow = vertical.Start[height - 1] + vertical.Count[height - 1];

        RgbImage current = image;
        int shift = 0;
        if (needHorizontal)
        {
            var horizontal = KernelMap.Create(image.Width, width, filter);
            current = ResamplePass.Horizontal(image, firstRow, lastRow - firstRow, horizontal);
            shift = firstRow;
        }
        if (needVertical)
            current = ResamplePass.Vertical(current, vertical, shift);
        return current;
    }
}
