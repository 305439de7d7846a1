using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Tests.Guidance;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Diffusion;

/// <summary>
/// <c>DiffusionLoss.TrainingLosses</c> against the original's <c>GaussianDiffusion.training_losses</c>
/// (Reference/losses): the process the flags build, x_t, the timesteps the model sees, every term, the VB
/// intermediates, and the gradients with respect to the model output and the UNet's parameters.
/// Tolerances are the reference README's, derived from its float64 re-computation: the float32 terms lie within
/// 3e-6 relative of float64 above 0.01 and within 7e-8 absolute below, hence rtol 1e-4 and atol 1e-5·f (f the
/// term's T or T/1000 factor); tensors rtol 1e-5 with a floor of 1e-5 of their largest magnitude; gradients 1e-4
/// of their largest magnitude; timesteps, maps and term keys exact.
/// </summary>
public class LossParityTests
{
    private const double TermRtol = 1e-4;
    private const double TermAtol = 1e-5;
    private const double TensorTol = 1e-5;
    private const double GradTol = 1e-4;
    // float64 tables on both sides: only libm rounding differs (as in NoiseScheduleTests).
    private const double TableRtol = 1e-12;

    public static TheoryData<string> Cases => LossReference.Cases();

    [Theory, MemberData(nameof(Cases))]
    public void Flags_BuildTheOriginalsProcess(string name)
    {
        var json = LossReference.Json(name);
        var expected = json.GetProperty("diffusion");
        var loss = LossReference.LossFrom(json.GetProperty("diffusion_flags"));
        var d = loss.Process.Diffusion;
        Assert.Equal(expected.GetProperty("loss_type").GetString(), LossReference.OriginalName(loss.LossType));
        Assert.Equal(expected.GetProperty("model_mean_type").GetString(), LossReference.OriginalName(loss.Process.MeanType));
        Assert.Equal(expected.GetProperty("model_var_type").GetString(), LossReference.OriginalName(loss.Process.VarianceType));
        Assert.Equal(expected.GetProperty("num_timesteps").GetInt32(), d.NumTimesteps);
        Assert.Equal(expected.GetProperty("original_num_steps").GetInt32(), d.OriginalNumSteps);
        Assert.Equal(expected.GetProperty("rescale_timesteps").GetBoolean(), d.RescaleTimesteps);
        Assert.Equal(json.GetProperty("terms").EnumerateArray().Select(e => e.GetString()), loss.TermNames);

        var tensors = LossReference.Tensors(name);
        // Without respacing the map is the identity and the file leaves it out.
        var map = tensors.TryGetValue("timestep_map", out var m) ? m.Int64() : Enumerable.Range(0, d.NumTimesteps).Select(i => (long)i).ToArray();
        Assert.Equal(map, d.TimestepMap.Select(i => (long)i).ToArray());
        if (json.TryGetProperty("timestep_map", out var jsonMap) && jsonMap.ValueKind == System.Text.Json.JsonValueKind.Array)
            Assert.Equal(jsonMap.EnumerateArray().Select(e => e.GetInt64()), d.TimestepMap.Select(i => (long)i));
        Reference.AssertClose(d.Betas, tensors["tables/betas"].Float64(), TableRtol, 0, "betas");

        var t = tensors["t"].Int64();
        var tables = new Dictionary<string, IReadOnlyList<double>>
        {
            ["sqrt_alphas_cumprod"] = d.SqrtAlphasCumprod,
            ["sqrt_one_minus_alphas_cumprod"] = d.SqrtOneMinusAlphasCumprod,
            ["sqrt_recip_alphas_cumprod"] = d.SqrtRecipAlphasCumprod,
            ["sqrt_recipm1_alphas_cumprod"] = d.SqrtRecipm1AlphasCumprod,
            ["posterior_mean_coef1"] = d.PosteriorMeanCoef1,
            ["posterior_mean_coef2"] = d.PosteriorMeanCoef2,
            ["posterior_variance"] = d.PosteriorVariance,
            ["posterior_log_variance_clipped"] = d.PosteriorLogVarianceClipped,
            ["log_betas"] = loss.Process.LogBetas,
            ["fixed_large_log_variance"] = loss.Process.FixedLargeLogVariance,
        };
        foreach (var key in tensors.Keys.Where(k => k.StartsWith("tables_at_t/", StringComparison.Ordinal)))
        {
            var table = tables[key["tables_at_t/".Length..]];
            Reference.AssertClose(t.Select(i => table[(int)i]).ToArray(), tensors[key].Float64(), TableRtol, 0, key);
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void Terms_FromTheOriginalsModelOutput_MatchWithTheirGradient(string name)
    {
        using var scope = NewDisposeScope();
        var json = LossReference.Json(name);
        var r = LossReference.Tensors(name);
        var loss = LossReference.LossFrom(json.GetProperty("diffusion_flags"));
        var xt = loss.Process.Diffusion.QSample(r["x_start"], r["t"], r["noise"]);
        GuidanceReference.AssertCloseScaled(xt, r["x_t"], TensorTol, $"{name} x_t");
        Assert.Equal(json.GetProperty("model_t_seen_dtype").GetString() == "float32" ? ScalarType.Float32 : ScalarType.Int64, r["model_t_seen"].dtype);

        // A leaf standing for the model output: its gradient is d loss.mean() / d model_output.
        var output = r["model_output"].clone().requires_grad_();
        int calls = 0;
        var y = r.GetValueOrDefault("y");
        var terms = loss.TrainingLosses(LossReference.Stub(output, r["model_t_seen"], y, () => calls++), r["x_start"], r["t"], y, r["noise"]);
        Assert.Equal(1, calls);
        Assert.Equal(loss.TermNames, terms.Named().Select(n => n.Key));
        AssertTerms(name, loss, r, terms, r["model_output"], "");

        terms.Loss.mean().backward();
        // Where the original's tanh rounded a pixel's bin mass to the clamp, its gradient there is 0 and ours is not.
        var keep = RoundingFragileOutputs(loss, r, r["model_output"]).logical_not();
        Assert.True(keep.to_type(ScalarType.Float64).mean().ToDouble() > 0.99, "more than 1 % of the outputs are rounding-fragile");
        GradAssert(output.grad![keep], r["grad/model_output"][keep], r["grad/model_output"].abs().max().ToDouble(), $"{name} d loss / d model_output");
    }

    [Theory, MemberData(nameof(Cases))]
    public void VbIntermediates_MatchTheOriginals(string name)
    {
        using var scope = NewDisposeScope();
        var r = LossReference.Tensors(name);
        if (!r.ContainsKey("vb/output")) return; // the plain MSE loss has no bound term
        var loss = LossReference.LossFrom(LossReference.Json(name).GetProperty("diffusion_flags"));
        var sampler = loss.Process;
        var (x0, t, xt) = (r["x_start"], r["t"], r["x_t"]);
        using var noGrad = no_grad();

        var truth = sampler.QPosteriorMeanVariance(x0, xt, t);
        GuidanceReference.AssertCloseScaled(truth.Mean, r["vb/true_mean"], TensorTol, $"{name} true_mean");
        Reference.AssertClose(truth.LogVarianceClipped.flatten(), r["vb/true_log_variance"], TensorTol, 0, $"{name} true_log_variance");

        var p = sampler.PMeanVarianceFromOutput(r["model_output"], xt, t, clipDenoised: false);
        GuidanceReference.AssertCloseScaled(p.Mean, r["vb/mean"], TensorTol, $"{name} mean");
        GuidanceReference.AssertCloseScaled(p.PredXstart, r["vb/pred_xstart"], TensorTol, $"{name} pred_xstart");
        Reference.AssertClose(p.LogVariance, r["vb/log_variance"], TensorTol, 0, $"{name} log_variance");

        var vb = new VariationalBound(sampler).TermsBpd(p, x0, xt, t);
        // Both branches for every sample, before any T or T/1000 factor.
        Reference.AssertClose(vb.KlBpd, r["vb/kl_bpd"], TermRtol, TermAtol, $"{name} kl_bpd");
        var allowance = LossReference.TanhRoundingAllowanceBits(x0, p.Mean, p.LogVariance).Select(a => a + TermAtol).ToArray();
        LossReference.AssertClose(vb.DecoderNllBpd, r["vb/decoder_nll_bpd"], TermRtol, allowance, $"{name} decoder_nll_bpd");
        var atZero = t.Int64().Select(v => v == 0).ToArray();
        LossReference.AssertClose(vb.Output, r["vb/output"], TermRtol, allowance.Select((a, i) => atZero[i] ? a : TermAtol).ToArray(), $"{name} vb output");
    }

    [Theory, MemberData(nameof(Cases))]
    public void UNet_EndToEnd_OutputTermsAndParameterGradients(string name)
    {
        using var scope = NewDisposeScope();
        var json = LossReference.Json(name);
        var r = LossReference.Tensors(name);
        var loss = LossReference.LossFrom(json.GetProperty("diffusion_flags"));
        using var unet = LossReference.LoadUNet(json);
        var y = r.GetValueOrDefault("y");
        Tensor? output = null;
        var terms = loss.TrainingLosses((x, modelT, label) =>
        {
            LossReference.AssertSameTimesteps(r["model_t_seen"], modelT);
            // Kept out of the loss's dispose scopes: its gradient is taken below.
            output = unet.forward(x, modelT, label).DetachFromDisposeScope();
            GuidanceReference.AssertCloseScaled(output.detach(), r["model_output"], TensorTol, $"{name} model_output");
            return output;
        }, r["x_start"], r["t"], y, r["noise"]);
        AssertTerms(name, loss, r, terms, output!.detach(), " (UNet)");

        // d loss / d output is checked above against the original's; here the UNet's backward from it. At the pixels
        // where libm's tanh rounding decides the decoder's clamp, the original's output gradient is used, so that the
        // parameter gradients compare the backward pass itself.
        var gradOut = autograd.grad(new[] { terms.Loss.mean() }, new[] { output }, retain_graph: true)[0];
        var fragile = RoundingFragileOutputs(loss, r, output.detach());
        output.backward(new[] { where(fragile, r["grad/model_output"], gradOut) });
        var parameters = unet.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var expected = r.Keys.Where(k => k.StartsWith("grad/param/", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(expected);
        // A gradient below 1e-6 of the largest is float32 rounding noise of an exact zero (time_embed without
        // scale-shift norm at 32 channels, where GroupNorm(32, 32) removes the embedding): ours must be noise as well.
        double largest = expected.Max(k => r[k].abs().max().ToDouble());
        foreach (var key in expected)
        {
            var actual = parameters[key["grad/param/".Length..]].grad!;
            double scale = r[key].abs().max().ToDouble();
            if (scale < 1e-6 * largest)
                Reference.AssertClose(actual, r[key], 0, 1e-6 * largest, $"{name} {key} (rounding noise)");
            else
                GradAssert(actual, r[key], scale, $"{name} {key}");
        }
        output.Dispose();
    }

    [Theory, MemberData(nameof(Cases))]
    public void PlainKl_IsTheRescaledKlOverT(string name)
    {
        using var scope = NewDisposeScope();
        var r = LossReference.Tensors(name);
        if (!r.TryGetValue("extra/kl_unrescaled/loss", out var expected)) return; // only KL cases carry it
        var json = LossReference.Json(name);
        var rescaled = LossReference.LossFrom(json.GetProperty("diffusion_flags"));
        Assert.Equal(LossType.RescaledKl, rescaled.LossType);
        var plain = new DiffusionLoss(rescaled.Process, LossType.Kl);
        Assert.Equal(new[] { "loss" }, plain.TermNames);
        var y = r.GetValueOrDefault("y");
        using var noGrad = no_grad();
        var terms = plain.TrainingLosses(LossReference.Stub(r["model_output"], r["model_t_seen"], y, () => { }), r["x_start"], r["t"], y, r["noise"]);
        Reference.AssertClose(terms.Loss, expected, TermRtol, TermAtol, $"{name} plain KL loss");
    }

    /// <summary>
    /// Every term against the original's: rtol 1e-4 and atol 1e-5·f, plus, where t = 0 and the term holds the decoder
    /// NLL, the tanh-rounding allowance of <see cref="LossReference.TanhRoundingAllowanceBits"/> (times the bound's factor).
    /// </summary>
    private static void AssertTerms(string name, DiffusionLoss loss, Dictionary<string, Tensor> r, LossTerms terms, Tensor modelOutput, string what)
    {
        Assert.Equal(loss.TermNames, terms.Named().Select(n => n.Key));
        double[] allowance;
        using (no_grad())
        {
            var p = loss.Process.PMeanVarianceFromOutput(modelOutput, r["x_t"], r["t"], clipDenoised: false);
            allowance = LossReference.TanhRoundingAllowanceBits(r["x_start"], p.Mean, p.LogVariance);
        }
        var atZero = r["t"].Int64().Select(v => v == 0).ToArray();
        bool isKl = loss.LossType is LossType.Kl or LossType.RescaledKl;
        foreach (var key in loss.TermNames)
        {
            var actual = LossReference.Term(terms, key);
            Assert.Equal(ScalarType.Float32, actual.dtype);
            double scale = LossReference.TermScale(loss, key);
            bool holdsBound = key == "vb" || isKl || (key == "loss" && terms.Vb is not null);
            var atol = allowance.Select((a, i) => TermAtol * scale + (holdsBound && atZero[i] ? a * BoundFactor(loss) : 0)).ToArray();
            LossReference.AssertClose(actual.detach(), r[$"terms/{key}"], TermRtol, atol, $"{name} {key}{what}");
        }
    }

    /// <summary>
    /// The model-output elements whose gradient depends on libm's tanh rounding: at t = 0 samples, the pixels
    /// <see cref="LossReference.TanhRoundingAllowanceBits"/> counts, in the channels that reach the decoder (the
    /// variance channels of a learned variance, whose mean is detached for the bound; the mean itself for KL losses).
    /// </summary>
    private static Tensor RoundingFragileOutputs(DiffusionLoss loss, Dictionary<string, Tensor> r, Tensor modelOutput)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var p = loss.Process.PMeanVarianceFromOutput(modelOutput, r["x_t"], r["t"], clipDenoised: false);
        var pixels = LossReference.TanhRoundingFragile(r["x_start"], p.Mean, p.LogVariance)
                     & r["t"].eq(0).view(-1, 1, 1, 1);
        var none = zeros_like(pixels);
        bool isKl = loss.LossType is LossType.Kl or LossType.RescaledKl;
        var mask = !loss.Process.ModelLearnsVariance ? (isKl ? pixels : none)
            : cat(new[] { isKl ? pixels : none, pixels }, dim: 1);
        return mask.MoveToOuterDisposeScope();
    }

    /// <summary>The factor a bound term carries in the loss: T (RESCALED_KL), T/1000 (RESCALED_MSE) or 1.</summary>
    private static double BoundFactor(DiffusionLoss loss) => loss.LossType switch
    {
        LossType.RescaledKl => loss.Process.Diffusion.NumTimesteps,
        LossType.RescaledMse => loss.Process.Diffusion.NumTimesteps / 1000.0,
        _ => 1.0,
    };

    private static void GradAssert(Tensor actual, Tensor expected, double scale, string what) =>
        Reference.AssertClose(actual, expected, 0, GradTol * Math.Max(scale, 1e-30), what);
}
