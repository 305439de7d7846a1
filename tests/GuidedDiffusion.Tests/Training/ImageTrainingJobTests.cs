using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Tests.Training;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Tests.Training;

/// <summary>One 12-step run of a tiny class-conditional, learned-sigma UNet on 2 generated classes at 32×32.</summary>
public sealed class TinyImageRun
{
    public static readonly DiffusionModelConfig Model = new()
    {
        ImageSize = 32,
        NumChannels = 32,
        NumResBlocks = 1,
        ChannelMult = [1, 2],
        AttentionResolutions = [16],
        NumHeadChannels = 32,
        ClassCond = true,
        NumClasses = 2,
        LearnSigma = true,
    };

    public static readonly DiffusionConfig Diffusion = new() { DiffusionSteps = 100, LearnSigma = true };

    public TinyImageRun()
    {
        DataDir = TrainingFixtures.ImageFolder(2, 8, size: 32, seed: 4);
        LogDir = TestImages.TempDir();
        Config = Training(DataDir, LogDir, iterations: 12);
        Result = new ImageTrainingJob(Config, Model, Diffusion).Run();
    }

    public static TrainingConfig Training(string dataDir, string logDir, int iterations) => TrainingConfig.ImageTrainDefaults with
    {
        Seed = 5,
        Data = TrainingConfig.ImageTrainDefaults.Data with { DataDir = dataDir, BatchSize = 8, NumWorkers = 1 },
        Length = TrainingConfig.ImageTrainDefaults.Length with { Iterations = iterations },
        Optimizer = TrainingConfig.ImageTrainDefaults.Optimizer with { Lr = 2e-3 },
        Checkpoints = TrainingConfig.ImageTrainDefaults.Checkpoints with { LogDir = logDir, LogInterval = 1, SaveInterval = 5 },
    };

    public string DataDir { get; }
    public string LogDir { get; }
    public TrainingConfig Config { get; }
    public TrainingResult Result { get; }

    public static List<Dictionary<string, string>> Progress(string logDir)
    {
        var lines = File.ReadAllLines(Path.Combine(logDir, "progress.csv"));
        var header = lines[0].Split(',');
        return lines.Skip(1).Select(l => header.Zip(l.Split(',')).ToDictionary(p => p.First, p => p.Second)).ToList();
    }
}

public class ImageTrainingJobTests : IClassFixture<TinyImageRun>
{
    private readonly TinyImageRun _run;

    public ImageTrainingJobTests(TinyImageRun run) => _run = run;

    private static double D(string s) => double.Parse(s, System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void Run_WritesModelOptAndEmaCheckpoints_NamedLikeTheOriginalsTrainLoop()
    {
        // 12 updates, save_interval 5 → indices 5, 10 and the last, 11; one EMA file per rate.
        var names = Directory.GetFiles(_run.LogDir, "*.pt").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(new[]
        {
            "ema_0.9999_000005.pt", "ema_0.9999_000010.pt", "ema_0.9999_000011.pt",
            "model000005.pt", "model000010.pt", "model000011.pt", "opt000005.pt", "opt000010.pt", "opt000011.pt",
        }, names);
        var manifest = CheckpointManifest.Read(Path.Combine(_run.LogDir, "model000010.json"));
        Assert.Equal(11, manifest.CompletedSteps);
        Assert.Equal(TinyImageRun.Model, manifest.DiffusionModel);
        Assert.Null(manifest.Classifier);
        Assert.Equal(new[] { "class0", "class1" }, manifest.Classes);
        Assert.Equal(12, _run.Result.CompletedSteps);
        var weights = StateDictIO.Read(Path.Combine(_run.LogDir, "model000011.pt"));
        Assert.Contains("label_emb.weight", weights.Keys);
        Assert.Equal(6, weights["out.2.weight"].shape[0]); // learn_sigma: 2 × 3 output channels
    }

    [Fact]
    public void ProgressCsv_HasTheTrainLoopKeys_AndTheLossFalls()
    {
        var rows = TinyImageRun.Progress(_run.LogDir);
        Assert.Equal(12, rows.Count);
        var header = rows[0].Keys.ToArray();
        foreach (var key in new[] { "loss", "mse", "vb", "loss_q0", "mse_q3", "vb_q2", "grad_norm", "param_norm", "step", "samples" })
            Assert.Contains(key, header);
        Assert.Equal("8", rows[0]["samples"]);
        // The zero-initialised output layer predicts ε = 0 at first: mse ≈ E[ε²] = 1; a few updates lower it.
        double first = D(rows[0]["mse"]), last = rows.TakeLast(3).Average(r => D(r["mse"]));
        Assert.InRange(first, 0.8, 1.2);
        Assert.True(last < 0.8 * first, $"mse did not fall: first {first}, last three {last}");
        Assert.All(rows, r => Assert.True(double.IsFinite(D(r["loss"]))));
    }

    [Fact]
    public void Resume_ContinuesAtTheRecordedStep_AndReproducesTheUninterruptedRun()
    {
        var log = TestImages.TempDir();
        var config = TinyImageRun.Training(_run.DataDir, log, iterations: 12);
        config = config with
        {
            Checkpoints = config.Checkpoints with { ResumeCheckpoint = Path.Combine(_run.LogDir, "model000010.pt") },
        };
        var result = new ImageTrainingJob(config, TinyImageRun.Model, TinyImageRun.Diffusion).Run();
        Assert.Equal(12, result.CompletedSteps);
        var rows = TinyImageRun.Progress(log);
        Assert.Equal(new[] { "11" }, rows.Select(r => r["step"]));
        var resumed = StateDictIO.Read(Path.Combine(log, "model000011.pt"));
        var straight = StateDictIO.Read(Path.Combine(_run.LogDir, "model000011.pt"));
        foreach (var (key, value) in straight)
            Assert.True(TorchSharp.torch.allclose(value, resumed[key], rtol: 1e-5, atol: 1e-6), $"{key} differs after resume");
    }

    [Fact]
    public void Resume_WithAnotherArchitecture_IsRejected_NamingTheDifference()
    {
        var config = TinyImageRun.Training(_run.DataDir, TestImages.TempDir(), iterations: 12);
        config = config with
        {
            Checkpoints = config.Checkpoints with { ResumeCheckpoint = Path.Combine(_run.LogDir, "model000010.pt") },
        };
        var e = Assert.Throws<ConfigurationException>(() =>
            new ImageTrainingJob(config, TinyImageRun.Model with { NumChannels = 64 }, TinyImageRun.Diffusion).Run());
        Assert.Contains($"num_channels 64 (checkpoint: {TinyImageRun.Model.NumChannels})", e.Message);
    }

    [Fact]
    public void LearnSigmaMismatch_BetweenModelAndDiffusion_IsRejected()
    {
        var config = TinyImageRun.Training(_run.DataDir, TestImages.TempDir(), iterations: 1);
        var e = Assert.Throws<ConfigurationException>(() =>
            new ImageTrainingJob(config, TinyImageRun.Model, TinyImageRun.Diffusion with { LearnSigma = false }).Run());
        Assert.Contains("learn_sigma", e.Message);
    }
}
