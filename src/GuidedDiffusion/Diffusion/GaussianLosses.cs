using static TorchSharp.torch;

namespace GuidedDiffusion.Diffusion;

/// <summary>
/// The original's losses.py: the KL divergence between Gaussians and the discretized Gaussian decoder
/// likelihood of 8-bit images scaled to [−1, 1], all in nats and element-wise.
/// </summary>
public static class GaussianLosses
{
    /// <summary>Smallest probability taken to the log (the original's clamp, keeps −inf out of the loss).</summary>
    public const double MinProbability = 1e-12;

    /// <summary>
    /// KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) element-wise:
    /// 0.5·(−1 + logvar2 − logvar1 + e^(logvar1 − logvar2) + (mean1 − mean2)²·e^(−logvar2)).
    /// </summary>
    public static Tensor NormalKl(Tensor mean1, Tensor logvar1, Tensor mean2, Tensor logvar2)
    {
        using var scope = NewDisposeScope();
        var kl = 0.5 * (-1.0 + logvar2 - logvar1 + exp(logvar1 - logvar2) + (mean1 - mean2).square() * exp(-logvar2));
        return kl.MoveToOuterDisposeScope();
    }

    /// <summary>The original's tanh approximation of the standard normal CDF: 0.5·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    public static Tensor ApproxStandardNormalCdf(Tensor x)
    {
        using var scope = NewDisposeScope();
        var cdf = 0.5 * (1.0 + tanh(Math.Sqrt(2.0 / Math.PI) * (x + 0.044715 * x.pow(3))));
        return cdf.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// log p(x) of images x in [−1, 1] (uint8 rescaled) under N(means, e^(2·logScales)) discretised into 256 bins
    /// of width 2/255; the two edge bins extend to ∓∞ (for x &lt; −0.999 and x &gt; 0.999).
    /// </summary>
    /// <param name="x">Target images.</param>
    /// <param name="means">Gaussian means, shaped like <paramref name="x"/>.</param>
    /// <param name="logScales">Log standard deviations, shaped like <paramref name="x"/>.</param>
    public static Tensor DiscretizedGaussianLogLikelihood(Tensor x, Tensor means, Tensor logScales)
    {
        if (!x.shape.SequenceEqual(means.shape) || !x.shape.SequenceEqual(logScales.shape))
            throw new ArgumentException($"x [{string.Join(", ", x.shape)}], means [{string.Join(", ", means.shape)}] and log_scales [{string.Join(", ", logScales.shape)}] must have one shape.");
        using var scope = NewDisposeScope();
        var centered = x - means;
        var invStdv = exp(-logScales);
        var cdfPlus = ApproxStandardNormalCdf(invStdv * (centered + 1.0 / 255.0));
        var cdfMin = ApproxStandardNormalCdf(invStdv * (centered - 1.0 / 255.0));
        var logCdfPlus = log(cdfPlus.clamp(min: MinProbability));
        var logOneMinusCdfMin = log((1.0 - cdfMin).clamp(min: MinProbability));
        var logCdfDelta = log((cdfPlus - cdfMin).clamp(min: MinProbability));
        var logProbs = where(x < -0.999, logCdfPlus, where(x > 0.999, logOneMinusCdfMin, logCdfDelta));
        return logProbs.MoveToOuterDisposeScope();
    }

    /// <summary>Mean over every dimension but the batch: [B, ...] → [B].</summary>
    public static Tensor MeanFlat(Tensor x) => x.dim() == 1 ? x.alias() : x.flatten(1).mean(new long[] { 1 });
}
