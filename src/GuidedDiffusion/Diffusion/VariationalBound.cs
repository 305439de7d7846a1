using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Diffusion;

/// <summary>
/// One term of the variational bound (the original's <c>_vb_terms_bpd</c>), per sample [B], in bits per dimension.
/// Both branches are kept so that callers (and the parity tests) can see them; <see cref="Output"/> is the one the
/// original returns.
/// </summary>
/// <param name="Output">The decoder NLL where t = 0, the KL elsewhere (the original's <c>output</c>).</param>
/// <param name="PredXstart">The x₀ prediction p(x_{t−1} | x_t) was built from (clipped when requested).</param>
/// <param name="KlBpd">KL(q(x_{t−1} | x_t, x₀) ‖ p(x_{t−1} | x_t)) averaged over the pixels, for every sample.</param>
/// <param name="DecoderNllBpd">−log p(x₀ | x₁) of the discretised decoder averaged over the pixels, for every sample.</param>
public sealed record VbTerms(Tensor Output, Tensor PredXstart, Tensor KlBpd, Tensor DecoderNllBpd) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Output.Dispose();
        PredXstart.Dispose();
        KlBpd.Dispose();
        DecoderNllBpd.Dispose();
    }

    internal VbTerms MoveToOuter() => new(Output.MoveToOuterDisposeScope(), PredXstart.MoveToOuterDisposeScope(),
        KlBpd.MoveToOuterDisposeScope(), DecoderNllBpd.MoveToOuterDisposeScope());
}

/// <summary>
/// The full variational bound of a batch (the original's <c>calc_bpd_loop</c>), in bits per dimension. The [B, T]
/// tensors keep the original's column order: column j holds timestep T − 1 − j (the loop runs from T − 1 down to 0).
/// </summary>
/// <param name="TotalBpd">[B]: Σ_t <see cref="Vb"/> + <see cref="PriorBpd"/>, the negative log-likelihood bound.</param>
/// <param name="PriorBpd">[B]: KL(q(x_T | x₀) ‖ N(0, I)).</param>
/// <param name="Vb">[B, T]: the bound's terms (decoder NLL in the last column).</param>
/// <param name="XstartMse">[B, T]: mean squared error of the x₀ prediction.</param>
/// <param name="Mse">[B, T]: mean squared error of the ε derived from the x₀ prediction.</param>
public sealed record BpdResult(Tensor TotalBpd, Tensor PriorBpd, Tensor Vb, Tensor XstartMse, Tensor Mse) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        TotalBpd.Dispose();
        PriorBpd.Dispose();
        Vb.Dispose();
        XstartMse.Dispose();
        Mse.Dispose();
    }
}

/// <summary>
/// The original's likelihood evaluation over a <see cref="ReverseProcess"/>: the per-timestep terms
/// <c>_vb_terms_bpd</c>, the prior term <c>_prior_bpd</c> and the whole bound <c>calc_bpd_loop</c> (what
/// <c>scripts/image_nll.py</c> reports). All arithmetic is in the images' dtype with the tables cast to float32
/// first, as in the original.
/// </summary>
public sealed class VariationalBound
{
    private static readonly double Ln2 = Math.Log(2.0);

    /// <summary>Creates the evaluator for a process and model parameterisation.</summary>
    public VariationalBound(ReverseProcess sampler)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        Process = sampler;
    }

    /// <summary>The process, variance and mean types of the model being measured.</summary>
    public ReverseProcess Process { get; }

    /// <summary>
    /// <c>_vb_terms_bpd</c> for an already computed p(x_{t−1} | x_t): the KL against the true posterior for t &gt; 0, the
    /// discretised decoder NLL (the target's 8-bit bins, edges to ∓∞) for t = 0.
    /// </summary>
    /// <param name="p">The model's mean and log variance at (x_t, t).</param>
    /// <param name="x0">Clean images [B, C, H, W].</param>
    /// <param name="xt">Noised images.</param>
    /// <param name="t">Spaced step indices [B].</param>
    public VbTerms TermsBpd(PMeanVarianceResult p, Tensor x0, Tensor xt, Tensor t)
    {
        using var scope = NewDisposeScope();
        var truth = Process.QPosteriorMeanVariance(x0, xt, t);
        var kl = GaussianLosses.MeanFlat(GaussianLosses.NormalKl(truth.Mean, truth.LogVarianceClipped, p.Mean, p.LogVariance)) / Ln2;
        var nll = -GaussianLosses.DiscretizedGaussianLogLikelihood(x0, p.Mean, 0.5 * p.LogVariance);
        var decoderNll = GaussianLosses.MeanFlat(nll) / Ln2;
        var output = where(t.to(decoderNll.device).eq(0), decoderNll, kl);
        return new VbTerms(output, p.PredXstart.alias(), kl, decoderNll).MoveToOuter();
    }

    /// <summary><c>_vb_terms_bpd</c> running the model (at the mapped t) for p(x_{t−1} | x_t).</summary>
    /// <param name="model">The denoiser.</param>
    /// <param name="x0">Clean images.</param>
    /// <param name="xt">Noised images.</param>
    /// <param name="t">Spaced step indices [B].</param>
    /// <param name="y">Labels of a class-conditional model, or null.</param>
    /// <param name="clipDenoised">Clip the x₀ prediction to [−1, 1] (the original's default; training uses false).</param>
    public VbTerms TermsBpd(DenoiserFn model, Tensor x0, Tensor xt, Tensor t, Tensor? y, bool clipDenoised = true)
    {
        using var scope = NewDisposeScope();
        var p = Process.PMeanVariance(model, xt, t, y, clipDenoised);
        return TermsBpd(p, x0, xt, t).MoveToOuter();
    }

    /// <summary>
    /// <c>_prior_bpd</c>: KL(q(x_T | x₀) ‖ N(0, I)) per sample, in bits per dimension. It does not depend on the model;
    /// it is the part of the bound the schedule alone decides.
    /// </summary>
    /// <param name="x0">Clean images [B, ...].</param>
    public Tensor PriorBpd(Tensor x0)
    {
        using var scope = NewDisposeScope();
        var last = full(new long[] { x0.shape[0] }, Process.Diffusion.NumTimesteps - 1, dtype: ScalarType.Int64, device: x0.device);
        var q = Process.Diffusion.QMeanVariance(x0, last);
        // The original passes the python floats 0.0 and converts them to x0's dtype.
        var zero = zeros(Array.Empty<long>(), dtype: x0.dtype, device: x0.device);
        var kl = GaussianLosses.NormalKl(q.Mean, q.LogVariance, zero, zero);
        return (GaussianLosses.MeanFlat(kl) / Ln2).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>calc_bpd_loop</c>: for t = T − 1 down to 0, draws ε (one <paramref name="noise"/> call per t, like
    /// <c>th.randn_like</c>), noises x₀ to x_t and evaluates <see cref="TermsBpd(DenoiserFn, Tensor, Tensor, Tensor, Tensor?, bool)"/>
    /// without gradients; also the x₀ and ε errors of the prediction. Columns are in loop order (see <see cref="BpdResult"/>).
    /// </summary>
    /// <param name="model">The denoiser.</param>
    /// <param name="x0">Clean images [B, C, H, W] in [−1, 1] (8-bit values rescaled).</param>
    /// <param name="y">Labels of a class-conditional model, or null.</param>
    /// <param name="noise">The noise source.</param>
    /// <param name="clipDenoised">Clip the x₀ predictions (the original's default: true).</param>
    /// <param name="progress">Called after each timestep with (steps done, total).</param>
    public BpdResult CalcBpdLoop(DenoiserFn model, Tensor x0, Tensor? y, NoiseFn noise, bool clipDenoised = true,
        Action<int, int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(noise);
        using var scope = NewDisposeScope();
        int total = Process.Diffusion.NumTimesteps;
        var vb = new List<Tensor>(total);
        var xstartMse = new List<Tensor>(total);
        var mse = new List<Tensor>(total);
        for (int i = total - 1; i >= 0; i--)
        {
            using var step = NewDisposeScope();
            var t = full(new long[] { x0.shape[0] }, i, dtype: ScalarType.Int64, device: x0.device);
            var eps = noise(x0);
            var xt = Process.Diffusion.QSample(x0, t, eps);
            using (no_grad())
            {
                var terms = TermsBpd(model, x0, xt, t, y, clipDenoised);
                vb.Add(terms.Output.detach().MoveToOuterDisposeScope());
                xstartMse.Add(GaussianLosses.MeanFlat((terms.PredXstart - x0).square()).MoveToOuterDisposeScope());
                var predEps = Process.PredictEpsFromXstart(xt, t, terms.PredXstart);
                mse.Add(GaussianLosses.MeanFlat((predEps - eps).square()).MoveToOuterDisposeScope());
            }
            progress?.Invoke(total - i, total);
        }
        var vbAll = stack(vb, dim: 1);
        var prior = PriorBpd(x0);
        var totalBpd = vbAll.sum(new long[] { 1 }) + prior;
        return new BpdResult(totalBpd.MoveToOuterDisposeScope(), prior.MoveToOuterDisposeScope(), vbAll.MoveToOuterDisposeScope(),
            stack(xstartMse, dim: 1).MoveToOuterDisposeScope(), stack(mse, dim: 1).MoveToOuterDisposeScope());
    }
}
