using GuidedDiffusion.Tests.Cli;

namespace GuidedDiffusion.Tests.ImageTrain;

public class ImageTrainCommandTests
{
    [Theory]
    [InlineData("--lr", "-1", "--lr")]
    [InlineData("--lr_anneal_steps", "-5", "--lr_anneal_steps")]
    [InlineData("--fp16_scale_growth", "-1", "--fp16_scale_growth")]
    [InlineData("--ema_rate", "1.5", "--ema_rate")]
    [InlineData("--schedule_sampler", "fancy", "uniform, loss-second-moment")]
    [InlineData("--image_size", "48", "--channel_mult")]
    public void BadFlagValues_FailBeforeAnyWork_NamingTheFlag(string flag, string value, string expected)
    {
        var missing = Path.Combine(Path.GetTempPath(), "gd-no-such-folder-" + Guid.NewGuid().ToString("N"));
        var result = CliRunner.Run("image-train", "--data_dir", missing, flag, value);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(expected, result.Error);
        Assert.DoesNotContain("creating model", result.Output);
    }

    [Fact]
    public void IterationsAndLrAnnealSteps_Together_AreRejected()
    {
        var result = CliRunner.Run("image-train", "--iterations", "5", "--lr_anneal_steps", "5");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--iterations", result.Error);
    }

    [Fact]
    public void Help_ShowsTheOriginalsDefaults()
    {
        var help = CliRunner.Run("image-train", "--help").Output;
        foreach (var flag in new[] { "--lr_anneal_steps", "--ema_rate", "--fp16_scale_growth", "--learn_sigma", "--use_kl", "--class_cond", "--schedule_sampler" })
            Assert.Contains(flag, help);
        Assert.Contains("0.9999", help);
        Assert.Contains("0.0001", help);
    }
}
