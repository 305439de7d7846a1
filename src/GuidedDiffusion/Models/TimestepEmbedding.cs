using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>The sinusoidal timestep embedding the classifier and the diffusion UNet share.</summary>
public static class TimestepEmbedding
{
    /// <summary>The original's <c>max_period</c>: the slowest frequency is 1/10000.</summary>
    public const double MaxPeriod = 10000.0;

    /// <summary>
    /// Embeds timesteps as <c>[cos(t·f), sin(t·f)]</c> with <c>f_i = exp(−ln(10000)·i/half)</c>, in float32,
    /// cos first (the original's order); an odd <paramref name="dim"/> gets one trailing zero column.
    /// </summary>
    /// <param name="timesteps">A 1-D tensor of N timesteps (integer or fractional).</param>
    /// <param name="dim">Embedding width (the model's base channel count).</param>
    /// <returns>A float32 tensor [N, dim] on the device of <paramref name="timesteps"/>.</returns>
    public static Tensor Sinusoidal(Tensor timesteps, long dim)
    {
        if (timesteps.dim() != 1)
            throw new ArgumentException($"timesteps must be 1-D [N], got shape [{string.Join(", ", timesteps.shape)}].", nameof(timesteps));
        long half = dim / 2;
        // Same operation order as the original (float32 arange, scaled, divided, exponentiated) for bit parity.
        var freqs = exp(arange(0, half, dtype: ScalarType.Float32, device: timesteps.device) * -Math.Log(MaxPeriod) / half);
        var args = timesteps.unsqueeze(1).to_type(ScalarType.Float32) * freqs.unsqueeze(0);
        var embedding = cat(new[] { cos(args), sin(args) }, dim: -1);
        if (dim % 2 == 1)
            embedding = cat(new[] { embedding, zeros_like(embedding[.., ..1]) }, dim: -1);
        return embedding;
    }
}
