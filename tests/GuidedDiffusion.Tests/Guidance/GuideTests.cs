using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Guidance;

/// <summary>
/// Classifier guidance against guide/&lt;diffusion&gt; (linear without respacing, cosine ddim10, linear 25): the
/// timesteps the model and cond_fn receive, p_mean_variance, cond_fn gradients, condition_mean, condition_score,
/// and one p_sample / ddim_sample step with and without guidance given the recorded noise.
/// </summary>
public class GuideTests
{
    public static TheoryData<string> Cases => new() { "linear_full", "cosine_ddim10", "linear_25" };

    // README tolerances: ~1e-5 relative on UNet outputs, means and pred_xstart; ~1e-4 on anything through cond_fn.
    private const double Tight = 1e-5;
    private const double Guided = 1e-4;

    // pred_xstart = sqrt(1/ᾱ)·x − sqrt(1/ᾱ − 1)·ε multiplies the model's float32 rounding by up to ~160 at t = 999.
    private const double Amplified = 1e-4;

    [Theory, MemberData(nameof(Cases))]
    public void SpacedTables_MatchReference(string name)
    {
        var run = GuideCaseRun.Of(name);
        var d = run.Process.Diffusion;
        Assert.Equal(run.Expected["timestep_map"].Int64(), d.TimestepMap.Select(v => (long)v));
        Assert.Equal(run.Json.GetProperty("num_timesteps").GetInt32(), d.NumTimesteps);
        Reference.AssertClose(d.Betas, run.Expected["betas"].Float64(), 1e-12, 1e-15, "betas");
        Reference.AssertClose(d.AlphasCumprod, run.Expected["alphas_cumprod"].Float64(), 1e-12, 1e-15, "alphas_cumprod");
        Reference.AssertClose(d.AlphasCumprodPrev, run.Expected["alphas_cumprod_prev"].Float64(), 1e-12, 1e-15, "alphas_cumprod_prev");
    }

    [Theory, MemberData(nameof(Cases))]
    public void ModelAndCondFn_SeeMappedTimesteps(string name)
    {
        var run = GuideCaseRun.Of(name);
        var expected = run.Expected["model_t_seen"].Int64();
        Assert.NotEmpty(run.ModelTimestepsSeen);
        foreach (var seen in run.ModelTimestepsSeen)
        {
            Assert.Equal(ScalarType.Int64, seen.dtype);
            Assert.Equal(expected, seen.Int64());
        }
        foreach (double scale in GuideCaseRun.Scales)
        {
            var expectedCond = run.Expected[$"{GuideCaseRun.Prefix(scale)}/cond_fn/t_seen"].Int64();
            Assert.NotEmpty(run.CondFnTimestepsSeen[scale]);
            foreach (var seen in run.CondFnTimestepsSeen[scale])
            {
                Assert.Equal(ScalarType.Int64, seen.dtype);
                Assert.Equal(expectedCond, seen.Int64());
            }
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void ModelOutput_MatchesReference(string name)
    {
        var run = GuideCaseRun.Of(name);
        GuidanceReference.AssertCloseScaled(run.ModelOutput, run.Expected["model_output"], Tight, "model_output");
    }

    [Theory, MemberData(nameof(Cases))]
    public void PMeanVariance_MatchesReference_ClippedAndNot(string name)
    {
        var run = GuideCaseRun.Of(name);
        var e = run.Expected;
        GuidanceReference.AssertCloseScaled(run.Pmv.Mean, e["pmv/mean"], Tight, "pmv/mean");
        GuidanceReference.AssertCloseScaled(run.Pmv.PredXstart, e["pmv/pred_xstart"], Amplified, "pmv/pred_xstart");
        Reference.AssertClose(run.Pmv.Variance.expand_as(e["pmv/variance"]), e["pmv/variance"], Tight, 0, "pmv/variance");
        Reference.AssertClose(run.Pmv.LogVariance.expand_as(e["pmv/log_variance"]), e["pmv/log_variance"], Tight, 0, "pmv/log_variance");
        GuidanceReference.AssertCloseScaled(run.PmvNoClip.Mean, e["pmv_noclip/mean"], Tight, "pmv_noclip/mean");
        GuidanceReference.AssertCloseScaled(run.PmvNoClip.PredXstart, e["pmv_noclip/pred_xstart"], Amplified, "pmv_noclip/pred_xstart");
        Assert.True(run.Pmv.PredXstart.abs().max().ToDouble() <= 1.0, "clip_denoised keeps pred_xstart in [-1, 1]");
    }

    [Theory, MemberData(nameof(Cases))]
    public void ClassifierLogits_MatchReference(string name)
    {
        var run = GuideCaseRun.Of(name);
        GuidanceReference.AssertCloseScaled(run.ClassifierLogits, run.Expected["classifier_logits"], Tight, "classifier_logits");
        var selected = nn.functional.log_softmax(run.ClassifierLogits, -1).gather(1, run.Expected["y"].view(-1, 1)).squeeze(1);
        GuidanceReference.AssertCloseScaled(selected, run.Expected["classifier_log_softmax_selected"], Tight, "log_softmax_selected");
    }

    [Theory, MemberData(nameof(Cases))]
    public void CondFnGradient_MatchesReference_AllScales(string name)
    {
        var run = GuideCaseRun.Of(name);
        foreach (double scale in GuideCaseRun.Scales)
        {
            string key = $"{GuideCaseRun.Prefix(scale)}/cond_fn/grad";
            GuidanceReference.AssertCloseScaled(run.Guided[scale]["cond_fn/grad"], run.Expected[key], Guided, key);
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void ConditionMeanAndScore_MatchReference_AllScales(string name)
    {
        var run = GuideCaseRun.Of(name);
        foreach (double scale in GuideCaseRun.Scales)
        {
            string p = GuideCaseRun.Prefix(scale);
            var got = run.Guided[scale];
            GuidanceReference.AssertCloseScaled(got["condition_mean"], run.Expected[$"{p}/condition_mean"], Tight, $"{p}/condition_mean");
            GuidanceReference.AssertCloseScaled(got["condition_score/mean"], run.Expected[$"{p}/condition_score/mean"], Guided, $"{p}/condition_score/mean");
            GuidanceReference.AssertCloseScaled(got["condition_score/pred_xstart"], run.Expected[$"{p}/condition_score/pred_xstart"], Guided, $"{p}/condition_score/pred_xstart");
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void UnguidedSteps_MatchReference_WithRecordedNoise(string name)
    {
        var run = GuideCaseRun.Of(name);
        foreach (var step in new[] { "p_sample", "ddim_eta0.0", "ddim_eta0.5" })
            GuidanceReference.AssertCloseScaled(run.Unguided[step], run.Expected[$"unguided/{step}/sample"], Tight, $"unguided/{step}");
        Assert.Equal(1, run.NoiseCallsPerStep);
    }

    [Theory, MemberData(nameof(Cases))]
    public void GuidedSteps_MatchReference_WithRecordedNoise(string name)
    {
        var run = GuideCaseRun.Of(name);
        foreach (double scale in GuideCaseRun.Scales)
        {
            string p = GuideCaseRun.Prefix(scale);
            var got = run.Guided[scale];
            GuidanceReference.AssertCloseScaled(got["p_sample/sample"], run.Expected[$"{p}/p_sample/sample"], Tight, $"{p}/p_sample");
            // p_sample returns the unguided, clipped pred_xstart: guidance only moves the mean.
            Assert.True(got["p_sample/pred_xstart"].equal(run.Pmv.PredXstart).all().item<bool>(), "p_sample pred_xstart is pmv's");
            GuidanceReference.AssertCloseScaled(got["ddim_eta0.0/sample"], run.Expected[$"{p}/ddim_eta0.0/sample"], Guided, $"{p}/ddim_eta0.0");
            GuidanceReference.AssertCloseScaled(got["ddim_eta0.5/sample"], run.Expected[$"{p}/ddim_eta0.5/sample"], Guided, $"{p}/ddim_eta0.5");
            GuidanceReference.AssertCloseScaled(got["ddim/pred_xstart"], run.Expected[$"{p}/ddim/pred_xstart"], Guided, $"{p}/ddim/pred_xstart");
            GuidanceReference.AssertCloseScaled(got["ddim_eta0.5/pred_xstart"], run.Expected[$"{p}/ddim/pred_xstart"], Guided, $"{p}/ddim eta 0.5 pred_xstart");
        }
    }
}
