using SkiaSharp;

namespace GuidedDiffusion.Formats;

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
        CheckSize(pixels, count, height, width);
        int n = Math.Max(1, Math.Min(count, maxImages));
        int columns = (int)Math.Ceiling(Math.Sqrt(n));
        var rows = Enumerable.Range(0, (n + columns - 1) / columns)
            .Select(r => (IReadOnlyList<int>)Enumerable.Range(r * columns, Math.Min(columns, Math.Min(count, n) - r * columns)).ToArray())
            .ToArray();
        WriteRows(path, pixels, count, height, width, rows);
    }

    /// <summary>
    /// Writes a grid whose row r holds the images <paramref name="rows"/>[r] (indices into <paramref name="pixels"/>),
    /// left-aligned; rows may differ in length (shorter rows leave black cells). Used to show samples by class.
    /// </summary>
    /// <param name="path">The PNG file to write.</param>
    /// <param name="pixels">N·H·W·3 bytes, C order.</param>
    /// <param name="count">N.</param>
    /// <param name="height">H.</param>
    /// <param name="width">W.</param>
    /// <param name="rows">Image indices per grid row.</param>
    public static void WriteRows(string path, byte[] pixels, int count, int height, int width, IReadOnlyList<IReadOnlyList<int>> rows)
    {
        CheckSize(pixels, count, height, width);
        ArgumentNullException.ThrowIfNull(rows);
        int columns = Math.Max(1, rows.Count == 0 ? 1 : rows.Max(r => r.Count));
        int rowCount = Math.Max(1, rows.Count);
        const int gutter = 2;
        int gridWidth = columns * width + (columns + 1) * gutter;
        int gridHeight = rowCount * height + (rowCount + 1) * gutter;
        using var bitmap = new SKBitmap(new SKImageInfo(gridWidth, gridHeight, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = new byte[gridWidth * gridHeight * 4];
        for (int i = 3; i < rgba.Length; i += 4) rgba[i] = 255;
        for (int row = 0; row < rows.Count; row++)
        {
            for (int column = 0; column < rows[row].Count; column++)
            {
                int image = rows[row][column];
                if (image < 0 || image >= count) throw new ArgumentOutOfRangeException(nameof(rows), $"image index {image} is outside [0, {count}).");
                int top = gutter + row * (height + gutter);
                int left = gutter + column * (width + gutter);
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
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var encoded = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        encoded.SaveTo(file);
    }

    private static void CheckSize(byte[] pixels, int count, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.Length != (long)count * height * width * 3)
            throw new ArgumentException($"expected {count}×{height}×{width}×3 bytes, got {pixels.Length}.", nameof(pixels));
    }
}
