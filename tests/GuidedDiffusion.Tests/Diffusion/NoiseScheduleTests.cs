using GuidedDiffusion.Cli;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Tests.Support;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Diffusion;

/// <summary>Schedules, respaced processes and q_sample against the original's float64 tables.</summary>
public class NoiseScheduleTests
{
    // float64 tables: the only differences are libm rounding in sqrt/log, far below 1e-12 relative.
    private const double TableRtol = 1e-12;

    private static readonly string[] Tables =
    {
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "alphas_cumprod_next", "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
        "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
        "posterior_mean_coef1", "posterior_mean_coef2",
    };

    private static double[] Table(GaussianDiffusion d, string name) => name switch
    {
        "betas" => d.Betas,
        "alphas_cumprod" => d.AlphasCumprod,
        "alphas_cumprod_prev" => d.AlphasCumprodPrev,
        "alphas_cumprod_next" => d.AlphasCumprodNext,
        "sqrt_alphas_cumprod" => d.SqrtAlphasCumprod,
        "sqrt_one_minus_alphas_cumprod" => d.SqrtOneMinusAlphasCumprod,
        "log_one_minus_alphas_cumprod" => d.LogOneMinusAlphasCumprod,
        "sqrt_recip_alphas_cumprod" => d.SqrtRecipAlphasCumprod,
        "sqrt_recipm1_alphas_cumprod" => d.SqrtRecipm1AlphasCumprod,
        "posterior_variance" => d.PosteriorVariance,
        "posterior_log_variance_clipped" => d.PosteriorLogVarianceClipped,
        "posterior_mean_coef1" => d.PosteriorMeanCoef1,
        "posterior_mean_coef2" => d.PosteriorMeanCoef2,
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [InlineData("linear", 1000)]
    [InlineData("cosine", 1000)]
    [InlineData("cosine", 4000)]
    public void Schedule_MatchesReference(string schedule, int steps)
    {
        var tensors = Reference.Tensors($"diffusion/schedule_{schedule}_{steps}.safetensors");
        Reference.AssertClose(BetaSchedule.Named(BetaSchedule.Parse(schedule), steps), tensors["raw_betas"].Float64(), TableRtol, 0, "raw_betas");

        var diffusion = new DiffusionConfig { DiffusionSteps = steps, NoiseSchedule = BetaSchedule.Parse(schedule) }.Build();
        Assert.Equal(steps, diffusion.NumTimesteps);
        Assert.Equal(Enumerable.Range(0, steps).Select(i => (long)i), tensors["timestep_map"].Int64());
        foreach (var name in Tables)
            Reference.AssertClose(Table(diffusion, name), tensors[name].Float64(), TableRtol, 0, name);
        foreach (var t in tensors.Values) t.Dispose();
    }

    [Theory]
    [InlineData("linear", "250")]
    [InlineData("linear", "ddim25")]
    [InlineData("linear", "10,15,20")]
    [InlineData("cosine", "250")]
    [InlineData("cosine", "ddim25")]
    [InlineData("cosine", "10,15,20")]
    public void Respacing_MatchesReference(string schedule, string spec)
    {
        var tensors = Reference.Tensors($"diffusion/respace_{schedule}_1000_{spec.Replace(',', '-')}.safetensors");
        var diffusion = new DiffusionConfig { NoiseSchedule = BetaSchedule.Parse(schedule), TimestepRespacing = spec }.Build();
        Assert.Equal(tensors["timestep_map"].Int64(), diffusion.TimestepMap.Select(i => (long)i));
        Assert.Equal(1000, diffusion.OriginalNumSteps);
        foreach (var name in Tables)
            Reference.AssertClose(Table(diffusion, name), tensors[name].Float64(), TableRtol, 0, name);
        foreach (var t in tensors.Values) t.Dispose();
    }

    [Fact]
    public void RespacingErrors_MatchReferenceMessages()
    {
        foreach (var c in Reference.Json("diffusion/respacing_errors.json").GetProperty("cases").EnumerateArray())
        {
            int steps = c.GetProperty("diffusion_steps").GetInt32();
            string spec = c.GetProperty("timestep_respacing").GetString()!;
            var e = Assert.Throws<ConfigurationException>(() => TimestepRespacing.Parse(spec, steps));
            Assert.Equal("timestep_respacing", e.Setting);
            Assert.EndsWith(c.GetProperty("message").GetString()!, e.Message);
        }
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("10,,5")]
    [InlineData("ddimX")]
    public void Respacing_RejectsMalformedSpecs_NamingTheFlag(string spec)
    {
        var e = Assert.Throws<ConfigurationException>(() => TimestepRespacing.Parse(spec, 1000));
        Assert.Contains("--timestep_respacing", CliErrors.Describe(e));
        Assert.Contains(spec, e.Message);
    }

    [Fact]
    public void UnknownSchedule_ListsAllowedNames()
    {
        var e = Assert.Throws<ConfigurationException>(() => BetaSchedule.Parse("quadratic"));
        Assert.Contains("linear, cosine", e.Message);
    }

    [Theory]
    [InlineData("linear", "none")]
    [InlineData("linear", "250")]
    [InlineData("cosine", "none")]
    [InlineData("cosine", "250")]
    public void QSample_MatchesReference(string schedule, string respacing)
    {
        using var scope = NewDisposeScope();
        var tensors = Reference.Tensors($"diffusion/q_sample_{schedule}_1000_{respacing}.safetensors");
        var diffusion = new DiffusionConfig
        {
            NoiseSchedule = BetaSchedule.Parse(schedule),
            TimestepRespacing = respacing == "none" ? "" : respacing,
        }.Build();
        var xt = diffusion.QSample(tensors["x_start"], tensors["t"], tensors["noise"]);
        Assert.Equal(ScalarType.Float32, xt.dtype);
        // Same float32 arithmetic as the reference; 1e-6 absolute allows for a fused multiply-add.
        Reference.AssertClose(xt, tensors["x_t"], 0, 1e-6, "x_t");
    }
}
