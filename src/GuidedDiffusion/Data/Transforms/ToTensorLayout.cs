namespace GuidedDiffusion.Data.Transforms;

/// <summary>
/// uint8 HWC → float32 CHW in [−1, 1], computed as the original does: <c>arr.astype(float32) / 127.5 − 1</c>.
/// </summary>
public static class ToTensorLayout
{
    /// <summary>Writes the normalised planes (R, G, B) of <paramref name="image"/> into <paramref name="destination"/>.</summary>
    public static void NormalizeToChw(RgbImage image, Span<float> destination)
    {
        int plane = image.Width * image.Height;
        if (destination.Length != plane * 3)
            throw new ArgumentException($"Destination holds {destination.Length} floats, expected 3×{image.Height}×{image.Width}.", nameof(destination));
        byte[] px = image.Pixels;
        for (int i = 0; i < plane; i++)
        {
            // float32 division then float32 subtraction, matching numpy's float32 arithmetic.
            destination[i] = px[i * 3] / 127.5f - 1f;
            destination[plane + i] = px[i * 3 + 1] / 127.5f - 1f;
            destination[2 * plane + i] = px[i * 3 + 2] / 127.5f - 1f;
        }
    }

    /// <summary>Returns the normalised CHW array.</summary>
    public static float[] NormalizeToChw(RgbImage image)
    {
        var result = new float[image.Width * image.Height * 3];
        NormalizeToChw(image, result);
        return result;
    }
}
