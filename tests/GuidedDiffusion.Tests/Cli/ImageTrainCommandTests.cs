using GuidedDiffusion.Tests.Cli;

namespace GuidedDiffusion.Tests.Cli;

public class ImageTrainCommandTests
{
    // Bad flag values are rows of Cli/BadInputSuiteTests.

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
