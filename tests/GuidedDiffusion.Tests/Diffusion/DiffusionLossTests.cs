using GuidedDiffusion.Diffusion;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Diffusion;

public class DiffusionLossTests
{
    private static readonly DiffusionConfig Small = new() { DiffusionSteps = 50 };

    private static (Tensor X0, Tensor Noise, Tensor T) Batch(long[] t, int channels = 3)
    {
        var g = new Generator(7);
        var x0 = (rand(new long[] { t.Length, channels, 4, 4 }, dtype: ScalarType.Float64, generator: g) * 2 - 1).round_(2);
        var noise = randn(new long[] { t.Length, channels, 4, 4 }, dtype: ScalarType.Float64, generator: g);
        return (x0, noise, tensor(t));
    }

    [Fact]
    public void TrainingLosses_Mse_EqualsTheDirectFormula()
    {
        var loss = DiffusionLoss.For(Small);
        var (x0, noise, t) = Batch(new long[] { 0, 10, 49 });
        DenoiserFn model = (x, _, _) => 0.5 * x;
        var terms = loss.TrainingLosses(model, x0, t, null, noise);
        Assert.Null(terms.Vb);
        Assert.Equal(new long[] { 3 }, terms.Loss.shape);
        var xt = loss.Process.Diffusion.QSample(x0, t, noise);
        var expected = (noise - 0.5 * xt).square().mean(new long[] { 1, 2, 3 });
        Assert.True(allclose(terms.Mse!, expected, rtol: 1e-12, atol: 1e-12));
        Assert.True(allclose(terms.Loss, expected, rtol: 1e-12, atol: 1e-12));
    }

    [Fact]
    public void TrainingLosses_PredictXstart_TargetsX0()
    {
        var loss = DiffusionLoss.For(Small with { PredictXstart = true });
        var (x0, noise, t) = Batch(new long[] { 5, 20 });
        var terms = loss.TrainingLosses((x, _, _) => zeros_like(x), x0, t, null, noise);
        Assert.True(allclose(terms.Loss, x0.square().mean(new long[] { 1, 2, 3 }), rtol: 1e-12, atol: 1e-12));
    }

    [Fact]
    public void LearnedSigma_VbTerm_MatchesAnExplicitComputation_AndTrainsOnlyTheVariance()
    {
        var config = Small with { LearnSigma = true };
        var loss = DiffusionLoss.For(config);
        var d = loss.Process.Diffusion;
        var (x0, noise, t) = Batch(new long[] { 0, 17, 17 });
        var eps = (0.3 * noise).requires_grad_();
        var v = full(new long[] { 3, 3, 4, 4 }, 0.25, dtype: ScalarType.Float64).requires_grad_();
        var terms = loss.TrainingLosses((_, _, _) => cat(new[] { eps, v }, 1), x0, t, null, noise);
        var xt = d.QSample(x0, t, noise).detach();

        var ts = new[] { 0, 17, 17 };
        for (int b = 0; b < 3; b++)
        {
            int s = ts[b];
            var xb = x0[b]; var xtb = xt[b]; var eb = eps[b].detach();
            // p(x_{t-1} | x_t): mean from ε through x0, log variance interpolated between β̃ and β with frac = (v + 1)/2.
            var predX0 = Math.Sqrt(1 / d.AlphasCumprod[s]) * xtb - Math.Sqrt(1 / d.AlphasCumprod[s] - 1) * eb;
            var mean = d.PosteriorMeanCoef1[s] * predX0 + d.PosteriorMeanCoef2[s] * xtb;
            double frac = (0.25 + 1) / 2, logVar = frac * Math.Log(d.Betas[s]) + (1 - frac) * d.PosteriorLogVarianceClipped[s];
            double expected;
            if (s == 0)
            {
                expected = -GaussianLosses.DiscretizedGaussianLogLikelihood(xb, mean, full_like(xb, 0.5 * logVar)).mean().item<double>() / Math.Log(2);
            }
            else
            {
                var trueMean = d.PosteriorMeanCoef1[s] * xb + d.PosteriorMeanCoef2[s] * xtb;
                double trueLogVar = d.PosteriorLogVarianceClipped[s];
                var kl = 0.5 * (-1 + logVar - trueLogVar + Math.Exp(trueLogVar - logVar) + (trueMean - mean).square() * Math.Exp(-logVar));
                expected = kl.mean().item<double>() / Math.Log(2);
            }
            // The tables are cast to float32 before use, as in the original; hence a float32-sized tolerance.
            Assert.Equal(expected, terms.Vb![b].item<double>(), 4);
        }
        Assert.True(allclose(terms.Loss, terms.Mse! + terms.Vb!));

        terms.Vb!.sum().backward();
        Assert.Equal(0.0, eps.grad is null ? 0.0 : eps.grad.abs().sum().item<double>());
        Assert.True(v.grad!.abs().sum().item<double>() > 0);
    }

    [Fact]
    public void RescaleLearnedSigmas_ScalesVbByTOver1000_AndUseKlGivesTheBoundTimesT()
    {
        var (x0, noise, t) = Batch(new long[] { 3, 30 });
        DenoiserFn model = (x, _, _) => cat(new[] { 0.1 * x, zeros_like(x) }, 1);
        var plain = DiffusionLoss.For(Small with { LearnSigma = true }).TrainingLosses(model, x0, t, null, noise);
        var rescaled = DiffusionLoss.For(Small with { LearnSigma = true, RescaleLearnedSigmas = true });
        Assert.Equal(LossType.RescaledMse, rescaled.LossType);
        Assert.True(allclose(rescaled.TrainingLosses(model, x0, t, null, noise).Vb!, plain.Vb! * (50 / 1000.0)));

        var kl = DiffusionLoss.For(Small with { LearnSigma = true, UseKl = true });
        Assert.Equal(new[] { "loss" }, kl.TermNames);
        var klTerms = kl.TrainingLosses(model, x0, t, null, noise);
        Assert.Null(klTerms.Mse);
        Assert.True(allclose(klTerms.Loss, plain.Vb! * 50));
        Assert.All(klTerms.Loss.data<double>().ToArray(), v => Assert.True(double.IsFinite(v) && v >= 0));
    }
}
