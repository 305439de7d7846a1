using SkiaSharp;

namespace GuidedDiffusion.Guidance;

/// <summary>Tiles uint8 RGB images into one PNG, for a quick look at samples.</summary>
public static class ImageGrid
{
    /// <summary>
    /// Writes the first <paramref name="maxImages"/> of <paramref name="pixels"/> (uint8 NHWC, 3 channels) as a
    /// near-square grid with a 2-pixel black gutter.
    /// </summary>
    /// <param name="path">The PNG file to write.</param>
    /// <param name="pixels">N·H·W·3 bytes, C order.</param>
    /// <param name="count">N.</param>
    /// <param name="height">H.</param>
    /// <param name="width">W.</param>
    /// <param name="maxImages">At most this many images go into the grid. Default 64.</param>
    public static void WritePng(string path, byte[] pixels, int count, int height, int width, int maxImages = 64)
    {
        if (pixels.Length != (long)count * height * width * 3)
            throw new ArgumentException($"expected {count}×{height}×{width}×3 bytes, got {pixels.Length}.", nameof(pixels));
        int n = Math.Max(1, Math.Min(count, maxImages));
        int columns = (int)Math.Ceiling(Math.Sqrt(n));
        int rows = (n + columns - 1) / columns;
        const int gutter = 2;
        int gridWidth = columns * width + (columns + 1) * gutter;
        int gridHeight = rows * height + (rows + 1) * gutter;
        using var bitmap = new SKBitmap(new SKImageInfo(gridWidth, gridHeight, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = new byte[gridWidth * gridHeight * 4];
        for (int i = 3; i < rgba.Length; i += 4) rgba[i] = 255;
        for (int image = 0; image < Math.Min(count, n); image++)
        {
            int top = gutter + image / columns * (height + gutter);
            int left = gutter + image % columns * (width + gutter);
            for (int y = 0; y < height; y++)
            {
                for (int x = 0; x < width; x++)
                {
                    long source = (((long)image * height + y) * width + x) * 3;
                    int target = ((top + y) * gridWidth + left + x) * 4;
                    rgba[target] = pixels[source];
                    rgba[target + 1] = pixels[source + 1];
                    rgba[target + 2] = pixels[source + 2];
                }
            }
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var encoded = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        encoded.SaveTo(file);
    }
}
