namespace GuidedDiffusion.Tests.Cli;

public class ClassifierTrainCommandTests
{
    [Theory]
    [InlineData("--classifier_pool", "max", "allowed")]
    [InlineData("--lr", "-1", "--lr")]
    [InlineData("--image_size", "48", "--channel_mult")]
    [InlineData("--microbatch", "64", "--microbatch")]
    [InlineData("--noise_schedule", "quadratic", "linear, cosine")]
    [InlineData("--timestep_respacing", "ddim999", "cannot create exactly 1000 steps")]
    [InlineData("--precision", "fp8", "fp32, fp16, bf16")]
    public void BadFlagValues_FailBeforeAnyWork_NamingTheFlag(string flag, string value, string expected)
    {
        var missing = Path.Combine(Path.GetTempPath(), "gd-no-such-folder-" + Guid.NewGuid().ToString("N"));
        var result = CliRunner.Run("classifier-train", "--data_dir", missing, flag, value);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(expected, result.Error);
        Assert.StartsWith("error:", result.Error.TrimStart());
        Assert.DoesNotContain("creating model", result.Output);
    }

    [Fact]
    public void PythonStyleBooleans_AreAccepted_AndNonsenseIsRejected()
    {
        foreach (var value in new[] { "True", "false", "FALSE" })
        {
            var missing = Path.Combine(Path.GetTempPath(), "gd-no-such-folder-" + Guid.NewGuid().ToString("N"));
            var ok = CliRunner.Run("classifier-train", "--data_dir", missing, "--noised", value, "--image_size", "32",
                "--channel_mult", "1,2", "--classifier_attention_resolutions", "16");
            Assert.Contains(missing, ok.Error); // parsed, then stopped at the missing folder
        }
        var bad = CliRunner.Run("classifier-train", "--anneal_lr", "maybe");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("'maybe'", bad.Error + bad.Output);
    }

    [Fact]
    public void Help_ShowsTheOriginalsDefaults_AndKebabAliases()
    {
        var help = CliRunner.Run("classifier-train", "--help");
        Assert.Equal(0, help.ExitCode);
        foreach (var expected in new[] { "--iterations", "150000", "--classifier_attention_resolutions", "32,16,8", "--classifier-width", "0.0003" })
            Assert.Contains(expected, help.Output);
    }

    [Fact]
    public void MissingDataFolder_NamesIt()
    {
        var missing = Path.Combine(Path.GetTempPath(), "gd-no-such-folder-" + Guid.NewGuid().ToString("N"));
        var result = CliRunner.Run("classifier-train", "--data_dir", missing, "--image_size", "32", "--channel_mult", "1,2",
            "--classifier_attention_resolutions", "16");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(missing, result.Error);
    }
}
