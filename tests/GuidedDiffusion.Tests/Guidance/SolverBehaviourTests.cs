using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Diffusion.Solvers;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Guidance;

/// <summary>
/// What the parity vectors cannot show: the guidance interval on every sampler, the settings' errors, the
/// discrete schedule's edges, x₀-predicting models, and that the networks take fractional timesteps.
/// </summary>
public class SolverBehaviourTests
{
    private static readonly SolverCase Guided = SolverCase.All.Single(c => c.Name == "dpmpp_2m_time_uniform");
    private static readonly SolverCase Unguided = SolverCase.All.Single(c => c.Name == "dpmpp_2m_time_uniform_unguided");

    [Fact]
    public void GuidanceInterval_OutsideEveryStep_GivesTheUnguidedReference_AndCoveringAll_TheGuidedOne()
    {
        var expectedUnguided = Reference.Tensors("solvers/solvers.safetensors")[$"{Unguided.Name}/states"];
        var expectedGuided = Reference.Tensors("solvers/solvers.safetensors")[$"{Guided.Name}/states"];
        // The solver's model times run from 999 down to 0: an interval above them never guides, one around them always does.
        var (never, _) = SolverParityTests.Run(Guided, Guided.Options, new GuidanceInterval(1000, 2000));
        var (always, _) = SolverParityTests.Run(Guided, Guided.Options, new GuidanceInterval(0, 999));
        var (middle, _) = SolverParityTests.Run(Guided, Guided.Options, new GuidanceInterval(300, 700));
        double Diff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();
        for (int i = 0; i < never.Count; i++)
        {
            Assert.True(Diff(never[i], expectedUnguided[i + 1]) < 4 * Unguided.Float32Error[i + 1] + 1e-5, $"step {i + 1}: outside the interval is unguided");
            Assert.True(Diff(always[i], expectedGuided[i + 1]) < 4 * Guided.Float32Error[i + 1] + 1e-5, $"step {i + 1}: covering everything is fully guided");
        }
        // Times 999, 899.1, ... : the first three steps (999, 899.1, 799.2) are unguided, so the states equal the
        // unguided ones there and part from them once guidance starts.
        Assert.True(Diff(middle[2], expectedUnguided[3]) < 1e-5, "unguided before the interval");
        Assert.True(Diff(middle[^1], expectedUnguided[^1]) > 1e-3, "guided inside the interval");
        Assert.True(Diff(middle[^1], expectedGuided[^1]) > 1e-3, "unguided after the interval");
    }

    [Fact]
    public void GuidanceInterval_Restrict_ZeroesSamplesOutside_AndSkipsTheClassifierWhenNoneIsInside()
    {
        using var scope = NewDisposeScope();
        int calls = 0;
        ConditionFn gradient = (x, t, y) => { calls++; return ones_like(x); };
        var restricted = new GuidanceInterval(200, 800).Restrict(gradient);
        var x = zeros(3, 1, 2, 2);
        var mixed = restricted(x, tensor(new long[] { 100, 200, 900 }), null);
        Assert.Equal(new[] { 0f, 1f, 0f }, mixed.amax([1, 2, 3]).Float32());
        Assert.Equal(1, calls);
        var outside = restricted(x, tensor(new float[] { 850.5f, 900f, 999f }), null);
        Assert.Equal(0f, outside.abs().max().item<float>());
        Assert.Equal(1, calls);
    }

    [Fact]
    public void GuidanceInterval_OnAncestralSampling_LeavesTheMeanUnguidedOutside()
    {
        var process = ReverseProcess.For(new DiffusionConfig { LearnSigma = false, TimestepRespacing = "10" });
        using var scope = NewDisposeScope();
        var x = randn(2, 3, 4, 4, generator: new Generator(3));
        DenoiserFn model = (xs, ts, _) => 0.5 * xs;
        ConditionFn condFn = (xs, ts, _) => full_like(xs, 2.0);
        var t = tensor(new long[] { 9, 9 });  // maps to step 999
        var pmv = process.PMeanVariance(model, x, t, null);
        var outside = process.ConditionMean(new GuidanceInterval(0, 500).Restrict(condFn), pmv, x, t, null);
        var inside = process.ConditionMean(new GuidanceInterval(500, 999).Restrict(condFn), pmv, x, t, null);
        Assert.Equal(0f, (outside - pmv.Mean).abs().max().item<float>());
        Assert.True((inside - pmv.Mean).abs().min().item<float>() > 1e-3);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("5")]
    [InlineData("800,200")]
    [InlineData("-1,5")]
    [InlineData("1,2,3")]
    [InlineData("nan,5")]
    public void GuidanceInterval_Parse_RejectsBadValues_NamingTheFlag(string text)
    {
        var error = Assert.Throws<ConfigurationException>(() => GuidanceInterval.Parse(text));
        Assert.Equal("guidance_interval", error.Setting);
        Assert.Contains(text, error.Message);
    }

    [Fact]
    public void GuidanceInterval_Parse_ReadsLoHi_AndEmptyMeansEverywhere()
    {
        Assert.Null(GuidanceInterval.Parse(""));
        Assert.Equal(new GuidanceInterval(200, 800.5), GuidanceInterval.Parse(" 200 , 800.5"));
        Assert.Equal("200,800.5", new GuidanceInterval(200, 800.5).ToString());
    }

    [Theory]
    [InlineData("solver_order", 4, 20, SolverMethod.Multistep, SolverKind.DpmSolverPlusPlus, false)]
    [InlineData("steps", 2, 0, SolverMethod.Multistep, SolverKind.DpmSolverPlusPlus, false)]
    [InlineData("steps", 3, 2, SolverMethod.Multistep, SolverKind.UniPC, false)]
    [InlineData("solver_method", 2, 10, SolverMethod.Singlestep, SolverKind.UniPC, false)]
    [InlineData("thresholding", 2, 10, SolverMethod.Multistep, SolverKind.DpmSolver, true)]
    public void SolverOptions_Validate_NamesTheBadSetting(string setting, int order, int steps, SolverMethod method, SolverKind kind, bool thresholding)
    {
        var options = new SolverOptions { Order = order, Steps = steps, Method = method, Kind = kind, Thresholding = thresholding };
        Assert.Equal(setting, Assert.Throws<ConfigurationException>(options.Validate).Setting);
    }

    [Fact]
    public void DiscreteNoiseSchedule_ClipsCosineLikeDpmSolver_AndKeepsModelTimesStepIndices()
    {
        var linear = new DiffusionConfig().Build();
        var cosine = new DiffusionConfig { NoiseSchedule = NoiseSchedule.Cosine }.Build();
        var linearSchedule = DiscreteNoiseSchedule.For(linear);
        Assert.Equal(1000, linearSchedule.TotalN);
        Assert.Equal(999.0, linearSchedule.ModelTime(1.0), 9);
        Assert.Equal(0.0, linearSchedule.ModelTime(linearSchedule.TEnd), 9);
        Assert.Equal(0.5 * Math.Log(linear.AlphasCumprod[499]), linearSchedule.MarginalLogMeanCoeff(0.5), 12);
        Assert.Equal(0.7, linearSchedule.InverseLambda(linearSchedule.MarginalLambda(0.7)), 9);

        var clipped = DiscreteNoiseSchedule.For(cosine);
        var unclipped = DiscreteNoiseSchedule.For(cosine, clipLambda: false);
        Assert.Equal(1000, unclipped.TotalN);
        Assert.InRange(clipped.TotalN, 900, 999);
        Assert.True(clipped.MarginalLambda(1.0) >= DiscreteNoiseSchedule.ClippedLambda);
        Assert.Equal(clipped.TotalN - 1, clipped.ModelTime(1.0), 9);

        var respaced = new DiffusionConfig { TimestepRespacing = "50" }.Build();
        Assert.Equal("timestep_respacing", Assert.Throws<ConfigurationException>(() => DiscreteNoiseSchedule.For(respaced)).Setting);
        var rescaled = DiscreteNoiseSchedule.For(new DiffusionConfig { DiffusionSteps = 4000, RescaleTimesteps = true }.Build());
        Assert.Equal(999.75, rescaled.ModelTime(1.0), 9);
    }

    [Fact]
    public void FromDenoiser_UsesTheEpsChannelsOfLearnedSigma_AndConvertsXstartPredictions()
    {
        using var scope = NewDisposeScope();
        var schedule = DiscreteNoiseSchedule.For(new DiffusionConfig().Build());
        var x = randn(2, 3, 4, 4, generator: new Generator(5));
        DenoiserFn learnedSigma = (xs, ts, _) => cat([full_like(xs, 0.25), full_like(xs, 9.0)], 1);
        var eps = SolverModels.FromDenoiser(learnedSigma, schedule, null)(x, 0.6);
        Assert.Equal(x.shape, eps.shape);
        Assert.Equal(0.25f, eps.max().item<float>());
        DenoiserFn xstart = (xs, ts, _) => full_like(xs, 0.5);
        var fromX0 = SolverModels.FromDenoiser(xstart, schedule, null, ModelMeanType.StartX)(x, 0.6);
        var expected = (x - schedule.MarginalAlpha(0.6) * 0.5) / schedule.MarginalStd(0.6);
        Assert.True((fromX0 - expected).abs().max().item<float>() < 1e-5);
    }

    [Fact]
    public void ClipDenoised_ReDerivesEpsFromTheClippedX0_LikeTheOriginalsConditionScore()
    {
        using var scope = NewDisposeScope();
        var schedule = DiscreteNoiseSchedule.For(new DiffusionConfig().Build());
        var x = 3 * randn(2, 3, 4, 4, generator: new Generator(8));
        NoisePredictionFn eps = (xs, t) => -xs;  // x₀ = (x + σx)/α, far outside [−1, 1] for |x| ~ 3
        foreach (double t in new[] { 0.05, 0.5, 0.95 })
        {
            double alpha = schedule.MarginalAlpha(t), sigma = schedule.MarginalStd(t);
            var raw = (x - sigma * eps(x, t)) / alpha;
            Assert.True(raw.abs().max().item<float>() > 1.5);
            var clipped = SolverModels.ClipDenoised(eps, schedule)(x, t);
            var x0 = (x - sigma * clipped) / alpha;
            Assert.True((x0 - raw.clamp(-1, 1)).abs().max().item<float>() < 1e-4, $"t = {t}");
        }
    }

    [Fact]
    public void Networks_TakeFractionalTimesteps_AsTheSolversPassThem()
    {
        // The solvers evaluate at model times such as 899.1: the sinusoidal embedding must use the fraction, not round it.
        // The shared models must be built outside this scope, or their parameters die with it (and other tests with them).
        _ = GuidanceModels.CondUNet;
        _ = GuidanceModels.Classifier;
        using var scope = NewDisposeScope();
        var embedding = TimestepEmbedding.Sinusoidal(tensor(new[] { 899.1f }), 8).Float64();
        for (int i = 0; i < 4; i++)
        {
            double frequency = Math.Exp(-Math.Log(10000) * i / 4);
            Assert.Equal(Math.Cos(899.1f * frequency), embedding[i], 3);
            Assert.Equal(Math.Sin(899.1f * frequency), embedding[4 + i], 3);
        }
        GuidanceModels.Run(() =>
        {
            var x = randn(1, 3, 16, 16, generator: new Generator(11));
            var y = tensor(new long[] { 2 });
            using var noGrad = no_grad();
            Tensor Unet(float t) => GuidanceModels.CondUNet.forward(x, tensor(new[] { t }), y);
            Tensor Classifier(float t) => GuidanceModels.Classifier.forward(x, tensor(new[] { t }));
            foreach (var (f, name) in new (Func<float, Tensor>, string)[] { (Unet, "UNet"), (Classifier, "classifier") })
            {
                var atFraction = f(899.5f);
                Assert.True(atFraction.isfinite().all().item<bool>(), name);
                Assert.True((atFraction - f(899f)).abs().max().item<float>() > 1e-6, $"{name}: 899.5 is not 899");
                Assert.True((atFraction - f(900f)).abs().max().item<float>() > 1e-6, $"{name}: 899.5 is not 900");
            }
            return 0;
        });
    }
}
