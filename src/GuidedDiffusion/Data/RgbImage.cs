namespace GuidedDiffusion.Data;

/// <summary>
/// An 8-bit RGB image stored row-major as interleaved bytes (height × width × 3), the layout of
/// <c>np.array(pil_image)</c> for a PIL "RGB" image.
/// </summary>
public sealed class RgbImage
{
    /// <summary>Creates an image; <paramref name="pixels"/> defaults to black.</summary>
    /// <exception cref="ArgumentException">The buffer length is not <c>width·height·3</c>.</exception>
    public RgbImage(int width, int height, byte[]? pixels = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        pixels ??= new byte[checked(width * height * 3)];
        if (pixels.Length != width * height * 3)
            throw new ArgumentException($"Expected {width}×{height}×3 = {width * height * 3} bytes, got {pixels.Length}.", nameof(pixels));
        Width = width;
        Height = height;
        Pixels = pixels;
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>Interleaved RGB bytes, row-major (HWC).</summary>
    public byte[] Pixels { get; }

    /// <summary>Row stride in bytes.</summary>
    public int Stride => Width * 3;

    /// <summary>Copies the rectangle starting at (<paramref name="x"/>, <paramref name="y"/>).</summary>
    public RgbImage Crop(int x, int y, int width, int height)
    {
        if (x < 0 || y < 0 || x + width > Width || y + height > Height)
            throw new ArgumentOutOfRangeException(nameof(x), $"Crop {width}×{height} at ({x},{y}) does not fit in a {Width}×{Height} image.");
        var result = new RgbImage(width, height);
        for (int row = 0; row < height; row++)
            Array.Copy(Pixels, ((y + row) * Width + x) * 3, result.Pixels, row * width * 3, width * 3);
        return result;
    }

    /// <summary>
    /// Places the image in the middle of a larger black canvas (offsets <c>(W−w)/2</c>, <c>(H−h)/2</c>),
    /// the usual way of presenting 28×28 MNIST digits to a 32×32 model without stretching them.
    /// </summary>
    public RgbImage PadTo(int width, int height)
    {
        if (width < Width || height < Height)
            throw new ArgumentOutOfRangeException(nameof(width), $"Cannot pad a {Width}×{Height} image to the smaller {width}×{height}.");
        var result = new RgbImage(width, height);
        int x0 = (width - Width) / 2, y0 = (height - Height) / 2;
        for (int row = 0; row < Height; row++)
            Array.Copy(Pixels, row * Stride, result.Pixels, ((y0 + row) * width + x0) * 3, Stride);
        return result;
    }
}
