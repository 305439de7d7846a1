using GuidedDiffusion.Diffusion;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Diffusion;

public class GaussianLossesTests
{
    private static double Cdf(double x) => 0.5 * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    [Fact]
    public void NormalKl_OfIdenticalGaussians_IsZero()
    {
        var mean = tensor(new[] { -1.5, 0.0, 2.0 });
        var logvar = tensor(new[] { -3.0, 0.0, 1.2 });
        var kl = GaussianLosses.NormalKl(mean, logvar, mean, logvar).data<double>().ToArray();
        Assert.All(kl, v => Assert.Equal(0.0, v, 12));
    }

    [Fact]
    public void NormalKl_MatchesTheClosedForm()
    {
        double[] m1 = { 0.3, -1.0, 2.5 }, lv1 = { -2.0, 0.5, 0.0 }, m2 = { -0.2, 0.0, 2.0 }, lv2 = { -1.0, -0.5, 1.0 };
        var kl = GaussianLosses.NormalKl(tensor(m1), tensor(lv1), tensor(m2), tensor(lv2)).data<double>().ToArray();
        for (int i = 0; i < 3; i++)
        {
            // KL(N1‖N2) = log(σ2/σ1) + (σ1² + (μ1 − μ2)²) / (2σ2²) − 1/2
            double s1 = Math.Exp(0.5 * lv1[i]), s2 = Math.Exp(0.5 * lv2[i]);
            double expected = Math.Log(s2 / s1) + (s1 * s1 + (m1[i] - m2[i]) * (m1[i] - m2[i])) / (2 * s2 * s2) - 0.5;
            Assert.Equal(expected, kl[i], 12);
        }
    }

    [Fact]
    public void DiscretizedGaussianLogLikelihood_MatchesTheBinFormula()
    {
        double[] x = { -1.0, -0.2, 0.0, 0.5, 1.0 }, mean = { -0.9, 0.0, 0.01, 0.7, 0.95 }, logScale = { -3.0, -1.0, -4.0, -2.0, -2.5 };
        var got = GaussianLosses.DiscretizedGaussianLogLikelihood(tensor(x), tensor(mean), tensor(logScale)).data<double>().ToArray();
        for (int i = 0; i < x.Length; i++)
        {
            double inv = Math.Exp(-logScale[i]), c = x[i] - mean[i];
            double upper = Cdf(inv * (c + 1 / 255.0)), lower = Cdf(inv * (c - 1 / 255.0));
            double p = x[i] < -0.999 ? upper : x[i] > 0.999 ? 1 - lower : upper - lower;
            Assert.Equal(Math.Log(Math.Max(p, 1e-12)), got[i], 10);
        }
    }

    [Fact]
    public void DiscretizedGaussianLogLikelihood_OverAll256Levels_SumsToOne()
    {
        var levels = arange(256, dtype: ScalarType.Float64) / 127.5 - 1.0;
        var means = full(256, 0.137, dtype: ScalarType.Float64);
        var logScales = full(256, Math.Log(0.3), dtype: ScalarType.Float64);
        double total = GaussianLosses.DiscretizedGaussianLogLikelihood(levels, means, logScales).exp().sum().item<double>();
        Assert.Equal(1.0, total, 6);
    }

    [Fact]
    public void ApproxStandardNormalCdf_IsCloseToTheExactCdf()
    {
        var x = tensor(new[] { -2.0, -0.5, 0.0, 1.0, 3.0 });
        double[] exact = { 0.022750131948179, 0.308537538725987, 0.5, 0.841344746068543, 0.998650101968370 };
        var got = GaussianLosses.ApproxStandardNormalCdf(x).data<double>().ToArray();
        for (int i = 0; i < exact.Length; i++) Assert.Equal(exact[i], got[i], 3);
    }
}
