namespace GuidedDiffusion.Data.Transforms;

/// <summary>Mirror image left–right (<c>arr[:, ::-1]</c>).</summary>
public static class HorizontalFlip
{
    /// <summary>Returns a mirrored copy.</summary>
    public static RgbImage Apply(RgbImage image)
    {
        var result = new RgbImage(image.Width, image.Height);
        int w = image.Width;
        for (int y = 0; y < image.Height; y++)
        {
            int row = y * image.Stride;
            for (int x = 0; x < w; x++)
            {
                int s = row + x * 3, d = row + (w - 1 - x) * 3;
                result.Pixels[d] = image.Pixels[s];
                result.Pixels[d + 1] = image.Pixels[s + 1];
                result.Pixels[d + 2] = image.Pixels[s + 2];
            }
        }
        return result;
    }
}
