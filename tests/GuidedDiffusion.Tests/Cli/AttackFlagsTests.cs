using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Cli;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Tests.Training;
using GuidedDiffusion.Training;
using GuidedDiffusion.Adversarial;

namespace GuidedDiffusion.Tests.Cli;

public class AttackFlagsTests
{
    [Fact]
    public void ClassifierTrain_BindsEveryAttackFlag_AndRecordsThemInTheSidecar()
    {
        var data = TrainingFixtures.ImageFolder(2, 2, size: 32);
        var log = TestImages.TempDir();
        int code = Program.BuildRoot().Parse(["classifier-train", "--data_dir", data, "--iterations", "1", "--batch_size", "2",
            "--image_size", "32", "--channel_mult", "1,2", "--classifier_attention_resolutions", "16", "--classifier_width", "32",
            "--num_head_channels", "32", "--num_workers", "0", "--eval_table", "False", "--log_dir", log,
            "--adversarial", "True", "--attack_eps", "0.25", "--attack_steps", "2", "--attack-step-size", "0.1", "--attack_eps_schedule", "sqrt_alpha"]).Invoke();
        Assert.Equal(0, code);
        var recorded = TrainingConfig.RecordedIn(CheckpointManifest.Read(Path.Combine(log, "model000000.json")))!.Objective.Adversarial;
        Assert.Equal(new L2PgdOptions { Eps = 0.25, Steps = 2, StepSize = 0.1, EpsSchedule = AttackEpsSchedule.SqrtAlpha }, recorded);
        Assert.Contains("adversarial training: L2 PGD: eps 0.25, 2 steps of 0.1, radius × sqrt(ᾱ_t)", File.ReadAllText(Path.Combine(log, "log.txt")));
    }

    [Theory]
    [InlineData("classifier-train", "--attack_steps 3", "--adversarial: --attack_steps only takes effect with --adversarial True.")]
    [InlineData("classifier-train", "--adversarial True --attack_eps 0", "--attack_eps: must be a positive finite L2 radius, got 0.")]
    [InlineData("classifier-train", "--adversarial True --attack_steps -2", "--attack_steps: must be ≥ 0")]
    [InlineData("classifier-train", "--adversarial True --attack_step_size -1", "--attack_step_size: must be a positive finite step length")]
    [InlineData("classifier-train", "--adversarial True --attack_eps_schedule linear", "--attack_eps_schedule: unknown schedule 'linear'; allowed: constant, sqrt_alpha.")]
    [InlineData("classifier-eval", "--attack_steps 3", "--attack_eps: --attack_steps needs an attack: give --attack_eps above 0.")]
    [InlineData("classifier-eval", "--attack_eps -0.5", "--attack_eps: must be a positive finite L2 radius")]
    public void BadAttackFlags_FailBeforeAnyWork_NamingTheFlag(string command, string flags, string expected)
    {
        var missing = Path.Combine(Path.GetTempPath(), "gd-no-such-folder-" + Guid.NewGuid().ToString("N"));
        var where = command == "classifier-train" ? new[] { "--data_dir", missing } : ["--model_path", Path.Combine(missing, "model000000.pt")];
        var result = CliRunner.InProcess([command, .. where, .. flags.Split(' ')]);
        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith($"error: {expected}", result.Error.Trim());
        Assert.Single(result.Error.Trim().Split('\n')); // one line, no stack trace
        Assert.DoesNotContain("creating model", result.Output);
    }
}
