using System.Text.Json;
using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Cli;
using GuidedDiffusion.Tests.Cli;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Evaluation;

/// <summary>
/// eps-eval, the colour-cast diagnostic, with denoisers whose error is known: every image is the same grey pattern
/// x₀ (R = G = B), so a model can compute the true noise ε = (x_t − sqrt(ᾱ_t)·x₀)/sqrt(1 − ᾱ_t) exactly; one with a
/// per-channel bias b added must show b as its mean error, b² as its MSE and a coloured x₀ estimate.
/// </summary>
public sealed class EpsilonErrorTests
{
    private const int Size = 8;

    /// <summary>A grey gradient: R = G = B, a different level per pixel.</summary>
    private static readonly RgbImage Grey = new(Size, Size, Enumerable.Range(0, Size * Size).SelectMany(i => Enumerable.Repeat((byte)(40 + 3 * i), 3)).ToArray());

    private static readonly ReverseProcess Process = ReverseProcess.For(new DiffusionConfig { DiffusionSteps = 100 });

    /// <summary>x₀ as the loader makes it: bytes / 127.5 − 1, [1, 3, S, S].</summary>
    private static Tensor X0() => tensor(Grey.Pixels.Select(b => b / 127.5f - 1).ToArray(), new long[] { 1, Size, Size, 3 }).permute(0, 3, 1, 2);

    /// <summary>The true noise of x_t plus <paramref name="bias"/> per channel; checks it is given model timesteps.</summary>
    private static DenoiserFn Oracle(float[] bias, bool xstartOutput = false, bool learnedSigma = false) => (xt, t, y) =>
    {
        Assert.Null(y);
        var a = GaussianDiffusion.Extract(Process.Diffusion.SqrtAlphasCumprod, t, xt);
        var s = GaussianDiffusion.Extract(Process.Diffusion.SqrtOneMinusAlphasCumprod, t, xt);
        var x0 = X0();
        var eps = (xt - a * x0) / s + tensor(bias).reshape(1, 3, 1, 1);
        var output = xstartOutput ? x0.expand_as(xt) : eps;
        return learnedSigma ? cat([output, randn_like(output)], 1) : output;
    };

    private static EpsilonErrorResult Run(DenoiserFn model, ReverseProcess process, EpsilonErrorOptions options) =>
        EpsilonErrorJob.Measure(model, classConditional: false, process, Size, new GreySource(10), options);

    [Fact]
    public void ExactNoisePrediction_HasNoError_AndAGreyEstimate()
    {
        var result = Run(Oracle([0, 0, 0]), Process, new EpsilonErrorOptions { Timesteps = [0, 10, 50, 99], NumSamples = 7, BatchSize = 3, Seed = 4, NumWorkers = 0 });
        Assert.Equal(7, result.Samples);
        Assert.Equal(0.0, result.InputChannelSpread, 12);
        Assert.Equal(new[] { 0, 10, 50, 99 }, result.Rows.Select(r => r.Timestep));
        foreach (var row in result.Rows)
        {
            // float32 x_t: the recovered ε is exact to ~1e-7/sqrt(1 − ᾱ_t), 1e-5 at t = 0.
            Assert.All(row.MeanError, e => Assert.InRange(Math.Abs(e), 0, 1e-5));
            Assert.All(row.Mse, e => Assert.InRange(e, 0, 1e-8));
            // x̂₀ = (x_t − sqrt(1 − ᾱ_t)·ε̂)/sqrt(ᾱ_t) divides the float32 rounding of x_t (~1e-7 each) by sqrt(ᾱ_t).
            Assert.InRange(row.XstartChannelSpread, 0, 1e-6 / Process.Diffusion.SqrtAlphasCumprod[row.Timestep]);
        }

        // mean_eps is the mean of the seeded draws: one [B, 3, S, S] draw per batch (3, 3, 1 images), the same at every t.
        var noise = Noise.From(new Generator(4));
        var draws = new[] { 3, 3, 1 }.Select(b => noise(zeros(b, 3, Size, Size))).ToArray();
        var meanEps = cat(draws, 0).to_type(ScalarType.Float64).mean(new long[] { 0, 2, 3 }).data<double>().ToArray();
        foreach (var row in result.Rows)
            for (int c = 0; c < 3; c++)
                Assert.Equal(meanEps[c], row.MeanEps[c], 12);
    }

    [Fact]
    public void PerChannelBias_IsRecovered_AndColoursTheXstartEstimate()
    {
        float[] bias = [0.05f, -0.02f, 0.0f];
        var options = new EpsilonErrorOptions { Timesteps = [5, 60], NumSamples = 10, BatchSize = 4, ClipDenoised = false, NumWorkers = 0 };
        var result = Run(Oracle(bias), Process, options);
        double biasStd = Math.Sqrt(bias.Select(b => (b - bias.Average()) * (b - bias.Average())).Average());
        foreach (var row in result.Rows)
        {
            for (int c = 0; c < 3; c++)
            {
                Assert.Equal(bias[c], row.MeanError[c], 5);
                Assert.Equal(bias[c] * bias[c], row.Mse[c], 5);
                Assert.Equal(Math.Abs(bias[c]), row.ImageMeanErrorRms[c], 5); // the same bias in every image
            }
            // x̂₀ = x₀ − sqrt(1/ᾱ_t − 1)·(ε̂ − ε): the bias, scaled, across the channels of every pixel.
            double scale = Process.Diffusion.SqrtRecipm1AlphasCumprod[row.Timestep];
            Assert.Equal(biasStd * scale, row.XstartChannelSpread, 5);
        }
        Assert.True(result.Rows[1].XstartChannelSpread > 3 * result.Rows[0].XstartChannelSpread); // more noise, larger cast

        // An x₀-predicting model with a learned variance (its extra channels ignored): ε̂ is derived from x̂₀ = x₀.
        var xstart = new ReverseProcess(Process.Diffusion, ModelVarianceType.LearnedRange, ModelMeanType.StartX);
        var exact = Run(Oracle([0, 0, 0], xstartOutput: true, learnedSigma: true), xstart, options);
        Assert.All(exact.Rows, row => Assert.All(row.Mse, e => Assert.InRange(e, 0, 1e-8)));
        Assert.All(exact.Rows, row => Assert.Equal(0.0, row.XstartChannelSpread)); // x̂₀ is the model's grey output itself
    }

    [Fact]
    public void OffsetGain_IsOneOverSigmaForAModelThatSeesTheMean_AndZeroForAMeanBlindOne()
    {
        var options = new EpsilonErrorOptions { Timesteps = [0, 50, 99], NumSamples = 4, BatchSize = 4, NumWorkers = 0 };
        // The oracle computes ε = (x_t − sqrt(ᾱ_t)·x₀)/sqrt(1 − ᾱ_t): a shift δ of x_t moves it by δ/sqrt(1 − ᾱ_t).
        foreach (var row in Run(Oracle([0.05f, 0, 0]), Process, options).Rows)
            Assert.All(row.OffsetGain, g => Assert.Equal(1 / Process.Diffusion.SqrtOneMinusAlphasCumprod[row.Timestep], g, 3));

        // Removing each image's per-channel mean from ε̂ (what a GroupNorm with one channel per group before the
        // output convolution does to a constant offset) makes ε̂ blind to the shift: the gain is 0 (float32 rounding).
        var oracle = Oracle([0, 0, 0]);
        DenoiserFn blind = (xt, t, y) => { var e = oracle(xt, t, y); return e - e.mean(new long[] { 2, 3 }, keepdim: true); };
        foreach (var row in Run(blind, Process, options).Rows)
            Assert.All(row.OffsetGain, g => Assert.InRange(Math.Abs(g), 0, 1e-3));
    }

    [Fact]
    public void Options_DefaultGridAndValidation()
    {
        Assert.Equal(new[] { 0, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999 }, EpsilonErrorOptions.DefaultTimesteps(1000));
        Assert.Equal(Enumerable.Range(0, 10), EpsilonErrorOptions.DefaultTimesteps(10));
        Assert.Equal("timesteps", Assert.Throws<ConfigurationException>(() => new EpsilonErrorOptions { Timesteps = [100] }.Validate(100)).Setting);
        Assert.Equal("num_samples", Assert.Throws<ConfigurationException>(() => new EpsilonErrorOptions { NumSamples = 0 }.Validate(100)).Setting);
    }

    [Fact]
    public void Files_HoldTheRowsAsJsonAndCsv()
    {
        var result = Run(Oracle([0.1f, 0, 0]), Process, new EpsilonErrorOptions { Timesteps = [1, 2], NumSamples = 2, BatchSize = 2, NumWorkers = 0 });
        var dir = Path.Combine(Path.GetTempPath(), "gd-eps-" + Guid.NewGuid().ToString("N"));
        try
        {
            var files = EpsilonErrorJob.WriteFiles(result, dir);
            using var json = JsonDocument.Parse(File.ReadAllText(files[0]));
            var rows = json.RootElement.GetProperty("rows");
            Assert.Equal(2, rows.GetArrayLength());
            Assert.Equal(result.Rows[0].MeanError[0], rows[0].GetProperty("mean_error")[0].GetDouble());
            var csv = File.ReadAllLines(files[1]);
            Assert.Equal(3, csv.Length);
            Assert.StartsWith("t,mean_error_r,mean_error_g,mean_error_b,mean_eps_r", csv[0]);
            Assert.EndsWith("xstart_channel_spread,offset_gain_r,offset_gain_g,offset_gain_b", csv[0]);
            Assert.Equal(20, csv[1].Split(',').Length);
            Assert.Equal(result.Rows[0].OffsetGain[2], rows[0].GetProperty("offset_gain")[2].GetDouble());
            Assert.Contains("mean(eps_hat - eps)", result.FormatTable());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Job_OnAnEmaCheckpoint_ReadsItsSavesSidecar_FallsBackToTheDemo_AndWritesBesideTheCheckpoint()
    {
        var dir = Path.Combine(Path.GetTempPath(), "gd-eps-job-" + Guid.NewGuid().ToString("N"));
        try
        {
            var ema = TestCheckpoints.DiffusionModelAsEma(dir, Guidance.ClassifierSampleCommandTests.TinyUNet, new DiffusionConfig { LearnSigma = true });
            var options = new EpsilonErrorOptions { Model = new DiffusionModelSource { Path = ema }, Timesteps = [0, 999], NumSamples = 4, BatchSize = 4, NumWorkers = 0 };
            var output = new StringWriter();
            var result = new EpsilonErrorJob(options, new RunContext { Output = output, Spelling = CliErrors.Flag }).Run();

            Assert.Contains($"architecture and noise process from {Path.Combine(dir, "model000001.json")}", output.ToString());
            Assert.Contains("No --data_dir given: the Fashion-MNIST demo's validation split (1000 grey images).", output.ToString());
            Assert.Equal(new[] { 0, 999 }, result.Rows.Select(r => r.Timestep));
            Assert.Equal(new[] { Path.Combine(dir, "eps_eval.json"), Path.Combine(dir, "eps_eval.csv") }, result.Files);
            Assert.All(result.Files, f => Assert.True(File.Exists(f), f));

            var outside = Assert.Throws<ConfigurationException>(() => new EpsilonErrorJob(options with { Timesteps = [1000] }).Run());
            Assert.Equal("timesteps", outside.Setting);
            Assert.Contains("[0, 1000)", outside.Message);
            var respaced = options with { Model = options.Model with { Diffusion = new DiffusionConfig { TimestepRespacing = "10" } } };
            Assert.Equal("timestep_respacing", Assert.Throws<ConfigurationException>(() => new EpsilonErrorJob(respaced).Run()).Setting);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Command_BadTimesteps_IsOneLineNamingTheFlag()
    {
        var bad = CliRunner.InProcess("eps-eval", "--model_path", "/no/such/model.pt", "--timesteps", "0,x");
        Assert.Equal(2, bad.ExitCode);
        Assert.Equal("error: --timesteps: 'x' is not an integer timestep (expected e.g. 0,100,500).", bad.Error.Trim());
    }

    /// <summary>Copies of <see cref="Grey"/>, labelled 0 and 1 alternately.</summary>
    private sealed class GreySource(int count) : IImageSource
    {
        public int Count => count;
        public ClassMap Classes { get; } = new(["a", "b"]);
        public int LabelOf(int index) => index % 2;
        public string NameOf(int index) => $"grey#{index}";
        public RgbImage Load(int index) => Grey;
    }
}
