using GuidedDiffusion.Tests.Cli;

namespace GuidedDiffusion.Tests.Cli;

public class ImageTrainCommandTests
{
    // Bad flag values are rows of Cli/BadInputSuiteTests.

    [Fact]
    public void IterationsAndLrAnnealSteps_Together_AreRejected()
    {
        var result = CliRunner.InProcess("image-train", "--iterations", "5", "--lr_anneal_steps", "5");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--iterations", result.Error);
    }

    [Fact]
    public void Help_ShowsTheOriginalsDefaults()
    {
        var help = CliRunner.InProcess("image-train", "--help").Output;
        foreach (var flag in new[] { "--lr_anneal_steps", "--ema_rate", "--fp16_scale_growth", "--learn_sigma", "--use_kl", "--class_cond", "--schedule_sampler" })
            Assert.Contains(flag, help);
        Assert.Contains("0.9999", help);
        Assert.Contains("0.0001", help);
    }

    [Fact]
    public void ImageTrain_DoesNotOffer_TheClassifierOnlyFlags()
    {
        var offered = GuidedDiffusion.Cli.Commands.ImageTrainCommand.Create().Options.Select(o => o.Name).ToHashSet();
        // classifier_train.py's validation, objective and length flags (image-train's length is lr_anneal_steps or iterations).
        foreach (var flag in new[] { "--val_data_dir", "--noised", "--anneal_lr", "--eval_interval", "--flip_validation", "--eval_table", "--adversarial", "--attack_eps" })
            Assert.DoesNotContain(flag, offered);
        foreach (var flag in new[] { "--data_dir", "--lr", "--batch_size", "--microbatch", "--ema_rate", "--log_interval", "--save_interval", "--resume_checkpoint",
            "--fp16_scale_growth", "--schedule_sampler", "--weight_decay", "--lr_anneal_steps", "--iterations", "--seed", "--precision" })
            Assert.Contains(flag, offered);
    }
}
