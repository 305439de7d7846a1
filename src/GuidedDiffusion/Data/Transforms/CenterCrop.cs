namespace GuidedDiffusion.Data.Transforms;

/// <summary>The original's <c>center_crop_arr</c>: short-side resize to the size, then the middle square.</summary>
public static class CenterCrop
{
    /// <summary>Returns the <paramref name="size"/>×<paramref name="size"/> centre crop.</summary>
    public static RgbImage Apply(RgbImage image, int size)
    {
        var resized = ShortSideResize.Apply(image, size);
        // Floor division, as numpy slicing with (H - S) // 2 does.
        int cropY = (resized.Height - size) / 2;
        int cropX = (resized.Width - size) / 2;
        return resized.Crop(cropX, cropY, size, size);
    }
}
