using System.Globalization;
using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Cli;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Tests.Support;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Tests.Training;

public class TrainingConfigTests
{
    /// <summary>The training section of a sidecar (the original's flag names) for <paramref name="config"/>.</summary>
    private static JsonElement Flat(TrainingConfig config) => JsonSerializer.SerializeToElement(config, CheckpointManifest.JsonOptions);

    private static void AssertDefaults(TrainingConfig config, (string Flag, object? Value)[] original)
    {
        var flat = Flat(config);
        foreach (var (flag, value) in original)
        {
            var actual = flat.TryGetProperty(flag, out var v) ? v.ToString() : "(absent)";
            Assert.True(actual == Convert.ToString(value, CultureInfo.InvariantCulture), $"{flag}: {actual}, the original's {value}");
        }
    }

    [Fact]
    public void SectionDefaults_AreClassifierTrainPys()
    {
        // classifier_train.py's create_argparser(), flag by flag (microbatch -1: no split), read from the sections.
        AssertDefaults(new TrainingConfig(),
        [
            ("data_dir", ""), ("val_data_dir", ""), ("noised", "True"), ("iterations", 150000), ("lr", "0.0003"), ("weight_decay", 0),
            ("anneal_lr", "False"), ("batch_size", 4), ("microbatch", -1), ("schedule_sampler", "uniform"), ("resume_checkpoint", ""),
            ("log_interval", 10), ("eval_interval", 5), ("save_interval", 10000), ("initial_lg_loss_scale", 16),
        ]);
        // load_data's: random crop and flip for the classifier's training data.
        Assert.Equal((true, true), (new DataOptions().RandomCrop, new DataOptions().RandomFlip));
    }

    [Fact]
    public void ImageTrainDefaults_AreImageTrainPys()
    {
        // image_train.py's create_argparser() (lr_anneal_steps 0: no limit, constant lr; fp16_util's first loss scale 2^20).
        AssertDefaults(TrainingConfig.ImageTrainDefaults,
        [
            ("data_dir", ""), ("schedule_sampler", "uniform"), ("lr", "0.0001"), ("weight_decay", 0), ("iterations", "(absent)"), ("anneal_lr", "False"),
            ("batch_size", 1), ("microbatch", -1), ("ema_rate", "0.9999"), ("log_interval", 10), ("save_interval", 10000),
            ("resume_checkpoint", ""), ("fp16_scale_growth", "0.001"), ("initial_lg_loss_scale", 20), ("random_crop", "False"),
        ]);
        Assert.Equal(new ImageTrainLength().ToLength(), TrainingConfig.ImageTrainDefaults.Length);
    }

    [Theory]
    [InlineData("lr", "must be a positive number")]
    [InlineData("microbatch", "-1 (no split) or at least 1")]
    [InlineData("precision", "allowed: fp32, fp16, bf16")]
    [InlineData("schedule_sampler", "allowed: uniform, loss-second-moment")]
    [InlineData("label_from", "allowed: prefix, folder")]
    [InlineData("ema_rate", "not a comma-separated list")]
    [InlineData("iterations", "at least 1")]
    public void BadValues_AreRejectedNamingTheFlag(string flag, string expected)
    {
        // The enum settings are refused where their spelling is parsed (a record can only hold a known value).
        Action bad = flag switch
        {
            "lr" => new TrainingConfig { Optimizer = new() { Lr = -1 } }.Validate,
            "microbatch" => new TrainingConfig { Data = new() { BatchSize = 4 }, Optimizer = new() { Microbatch = 0 } }.Validate,
            "precision" => () => TrainingPrecisions.Parse("fp8"),
            "schedule_sampler" => () => GuidedDiffusion.Diffusion.TimestepSamplerKinds.Parse("importance"),
            "label_from" => () => GuidedDiffusion.Data.Sources.LabelRules.Parse("suffix"),
            "ema_rate" => new TrainingConfig { Optimizer = new() { EmaRate = "fast" } }.Validate,
            _ => new TrainingConfig { Length = new() { Iterations = 0 } }.Validate,
        };
        var e = Assert.Throws<ConfigurationException>(bad);
        Assert.Equal(flag, e.Setting);
        Assert.Contains(expected, e.Message);
        Assert.StartsWith($"--{flag}:", CliErrors.Describe(e));
    }

    [Fact]
    public void FormatTable_MatchesTheOriginalsLogTxt()
    {
        // The first dump of the reference run, rebuilt from its progress.csv row, must print exactly as log.txt shows it.
        var csv = File.ReadAllLines(Reference.PathOf("train/main/progress.csv"));
        var header = csv[0].Split(',');
        var row = csv[1].Split(',');
        var values = header.Zip(row).Where(p => p.Second.Length > 0)
            .ToDictionary(p => p.First, p => double.Parse(p.Second, System.Globalization.CultureInfo.InvariantCulture));
        var table = RunLogger.FormatTable(values);
        var log = File.ReadAllText(Reference.PathOf("train/main/log.txt")).Replace("\r\n", "\n");
        Assert.Contains(table, log);
    }

    [Theory]
    [InlineData(60.47721038206145, "60.5")]
    [InlineData(8, "8")]
    [InlineData(0.125, "0.125")]
    [InlineData(6.955923557281494, "6.96")]
    [InlineData(1.5e-5, "1.5e-05")]
    [InlineData(123456.0, "1.23e+05")]
    public void FormatG3_MatchesPythonPercentG(double value, string expected) => Assert.Equal(expected, RunLogger.FormatG3(value));
}
