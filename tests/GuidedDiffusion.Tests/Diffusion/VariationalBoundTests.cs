using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Diffusion;

/// <summary>
/// The NLL evaluation (<c>_vb_terms_bpd</c> at every t, <c>_prior_bpd</c>, <c>calc_bpd_loop</c>) and losses.py's
/// functions against Reference/losses. Bound terms use the loss tolerance of <see cref="LossParityTests"/>
/// (rtol 1e-4, atol 1e-5 bits: float32 terms lie within 3e-6 relative of a float64 run); the elementwise functions
/// use the README's float32 rtol 1e-6 (atol 1e-6 nats for the log-likelihood) and float64 rtol 1e-12.
/// </summary>
public class VariationalBoundTests
{
    private const double TermRtol = 1e-4;
    private const double TermAtol = 1e-5;

    public static TheoryData<string> PerTimestepCases => LossReference.FilesOfKind("vb_terms_per_timestep");

    public static TheoryData<string> FunctionCases => LossReference.FilesOfKind("loss_functions");

    [Theory, MemberData(nameof(PerTimestepCases))]
    public void VbTerms_AtEveryTimestep_ClippedAndNot(string name)
    {
        using var scope = NewDisposeScope();
        var (json, r, bound, model, y) = Load(name);
        int steps = json.GetProperty("num_timesteps").GetInt32();
        Assert.Equal(steps, bound.Process.Diffusion.NumTimesteps);
        Assert.Equal(json.GetProperty("timestep_map").EnumerateArray().Select(e => e.GetInt32()), bound.Process.Diffusion.TimestepMap);
        var x0 = r["x_start"];
        long batch = x0.shape[0];
        using var noGrad = no_grad();
        foreach (var (clip, key) in new[] { (false, "noclip"), (true, "clip") })
        {
            for (int i = 0; i < steps; i++)
            {
                using var step = NewDisposeScope();
                var t = full(new long[] { batch }, i, dtype: ScalarType.Int64);
                var xt = bound.Process.Diffusion.QSample(x0, t, r["noise"]);
                var terms = bound.TermsBpd(model, x0, xt, t, y, clip);
                Reference.AssertClose(terms.Output, r[$"per_t/{key}/output"][i], TermRtol, TermAtol, $"{name} {key} output t={i}");
                var xstartMse = GaussianLosses.MeanFlat((terms.PredXstart - x0).square());
                Reference.AssertClose(xstartMse, r[$"per_t/{key}/xstart_mse"][i], TermRtol, TermAtol, $"{name} {key} xstart_mse t={i}");
            }
        }
    }

    [Theory, MemberData(nameof(PerTimestepCases))]
    public void CalcBpdLoop_InLoopOrder_WithThePrior(string name)
    {
        using var scope = NewDisposeScope();
        var (json, r, bound, model, y) = Load(name);
        int calls = 0;
        // The original's th.randn_like pinned to the stored noise, one draw per timestep.
        NoiseFn pinned = like => { calls++; return r["noise"].clone(); };
        var result = bound.CalcBpdLoop(model, r["x_start"], y, pinned, clipDenoised: true);
        Assert.Equal(json.GetProperty("num_timesteps").GetInt32(), calls);
        foreach (var (key, actual) in new[]
                 {
                     ("vb", result.Vb), ("xstart_mse", result.XstartMse), ("mse", result.Mse),
                     ("total_bpd", result.TotalBpd), ("prior_bpd", result.PriorBpd),
                 })
        {
            Reference.AssertClose(actual, r[$"calc_bpd_loop/{key}"], TermRtol, TermAtol, $"{name} calc_bpd_loop/{key}");
        }
        // The prior is tiny (about 1e-5 bits at T = 1000): it is compared relative to itself.
        Reference.AssertClose(bound.PriorBpd(r["x_start"]), r["prior_bpd"], TermRtol, 0, $"{name} prior_bpd");
        // Column j is t = T − 1 − j: the last column is the decoder NLL, as in the per-t table's first row.
        Reference.AssertClose(result.Vb[.., -1], r["per_t/clip/output"][0], TermRtol, TermAtol, $"{name} column order");
    }

    [Theory, MemberData(nameof(FunctionCases))]
    public void LossFunctions_Float32AndFloat64(string name)
    {
        using var scope = NewDisposeScope();
        var r = LossReference.Tensors(name);
        foreach (var (dtype, rtol, dgllAtol) in new[] { ("f32", 1e-6, 1e-6), ("f64", 1e-12, 0.0) })
        {
            var p = $"normal_kl/{dtype}/";
            var (m1, l1, m2, l2) = (r[p + "mean1"], r[p + "logvar1"], r[p + "mean2"], r[p + "logvar2"]);
            Reference.AssertClose(GaussianLosses.NormalKl(m1, l1, m2, l2), r[p + "out"], rtol, 0, p + "out");
            var zero = zeros(Array.Empty<long>(), dtype: m1.dtype);
            Reference.AssertClose(GaussianLosses.NormalKl(m1, l1, zero, zero), r[p + "out_vs_standard_normal"], rtol, 0, p + "out_vs_standard_normal");
            var broadcast = GaussianLosses.NormalKl(m1[..8].unsqueeze(1), l1[..8].unsqueeze(1), m2[..4].unsqueeze(0), l2[..4].unsqueeze(0));
            Reference.AssertClose(broadcast, r[p + "out_broadcast"], rtol, 0, p + "out_broadcast");

            Reference.AssertClose(GaussianLosses.ApproxStandardNormalCdf(r[$"cdf/z_{dtype}"]), r[$"cdf/{dtype}"], rtol, 0, $"cdf/{dtype}");

            var d = $"dgll/{dtype}/";
            var dgll = GaussianLosses.DiscretizedGaussianLogLikelihood(r[d + "x"], r[d + "means"], r[d + "log_scales"]);
            Assert.Equal(r[d + "out"].dtype, dgll.dtype);
            Reference.AssertClose(dgll, r[d + "out"], rtol, dgllAtol, d + "out");
        }
        var image = GaussianLosses.DiscretizedGaussianLogLikelihood(r["dgll/image/x"], r["dgll/image/means"], r["dgll/image/log_scales"]);
        Reference.AssertClose(image, r["dgll/image/out"], 1e-6, 1e-6, "dgll/image");
    }

    private static (System.Text.Json.JsonElement Json, Dictionary<string, Tensor> R, VariationalBound Bound, DenoiserFn Model, Tensor? Y) Load(string name)
    {
        var json = LossReference.Json(name);
        var r = LossReference.Tensors(name);
        var loss = LossReference.LossFrom(json.GetProperty("diffusion_flags"));
        var unet = LossReference.LoadUNet(json);
        // Labels come from the source case (this file stores only x_start and noise).
        var source = LossReference.Tensors(json.GetProperty("source_case").GetString()!);
        var y = source.GetValueOrDefault("y");
        return (json, r, new VariationalBound(loss.Process), (x, t, label) => unet.forward(x, t, label), y);
    }
}
