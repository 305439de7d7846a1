
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

    /// <summary>
    /// One image as the loader hands it to a model: <see cref="Apply"/>, then normalized to [−1, 1] float CHW in
    /// <paramref name="destination"/> (3·S·S values).
    /// </summary>
    public static void ToModelInput(RgbImage image, int size, bool randomCrop, bool randomFlip, SampleRandom random, Span<float> destination) =>
        ToTensorLayout.NormalizeToChw(Apply(image, size, randomCrop, randomFlip, random), destination);

    /// <summary>
    /// The validation loader's model input for one image (centre crop, no flip; draws nothing), as float CHW of
    /// 3·S·S values: what a classifier is given at evaluation time.
    /// </summary>
    public static float[] ValidationInput(RgbImage image, int size)
    {
        var input = new float[3 * size * size];
        ToModelInput(image, size, randomCrop: false, randomFlip: false, SampleRandom.ForSample(0, 0, 0), input);
        return input;
    }
}
