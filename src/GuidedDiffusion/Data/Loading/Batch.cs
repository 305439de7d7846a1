using static TorchSharp.torch;

namespace GuidedDiffusion.Data.Loading;

/// <summary>
/// A batch of images and labels. <paramref name="Images"/>: float32 [B, 3, S, S] in [−1, 1];
/// <paramref name="Labels"/>: int64 [B]. The receiver owns the tensors and disposes the batch.
/// </summary>
public sealed record Batch(Tensor Images, Tensor Labels) : IDisposable
{
    /// <summary>Number of images.</summary>
    public int Count => (int)Labels.shape[0];

    /// <summary>Disposes both tensors.</summary>
    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
    }
}

/// <summary>An image that failed to decode and was skipped (<see cref="DataOptions.SkipBadImages"/>).</summary>
/// <param name="Name">The file (or IDX record).</param>
/// <param name="Reason">The decoder's reason.</param>
public sealed record BadImage(string Name, string Reason);
