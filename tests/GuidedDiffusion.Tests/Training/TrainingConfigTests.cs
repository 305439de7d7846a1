using GuidedDiffusion.Cli;
using GuidedDiffusion.Tests.Support;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Tests.Training;

public class TrainingConfigTests
{
    [Fact]
    public void Defaults_AreTheOriginals()
    {
        var c = new TrainingConfig();
        Assert.Equal((150000, 3e-4, 0.0, false, 4, (int?)null, "uniform", 10, 5, 10000, true),
            (c.Iterations, c.Lr, c.WeightDecay, c.AnnealLr, c.BatchSize, c.Microbatch, c.ScheduleSampler.Spelling(), c.LogInterval, c.EvalInterval, c.SaveInterval, c.Noised));
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
            "lr" => new TrainingConfig { Lr = -1 }.Validate,
            "microbatch" => new TrainingConfig { BatchSize = 4, Microbatch = 0 }.Validate,
            "precision" => () => TrainingPrecisions.Parse("fp8"),
            "schedule_sampler" => () => GuidedDiffusion.Diffusion.TimestepSampler.Parse("importance"),
            "label_from" => () => GuidedDiffusion.Data.Sources.LabelRules.Parse("suffix"),
            "ema_rate" => new TrainingConfig { EmaRate = "fast" }.Validate,
            _ => new TrainingConfig { Iterations = 0 }.Validate,
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
