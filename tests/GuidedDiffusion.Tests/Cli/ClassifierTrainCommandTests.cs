namespace GuidedDiffusion.Tests.Cli;

public class ClassifierTrainCommandTests
{
    [Fact]
    public void PythonStyleBooleans_AreAccepted()
    {
        foreach (var value in new[] { "True", "false", "FALSE" })
        {
            var missing = Path.Combine(Path.GetTempPath(), "gd-no-such-folder-" + Guid.NewGuid().ToString("N"));
            var ok = CliRunner.InProcess("classifier-train", "--data_dir", missing, "--noised", value, "--image_size", "32",
                "--channel_mult", "1,2", "--classifier_attention_resolutions", "16");
            Assert.Contains(missing, ok.Error); // parsed, then stopped at the missing folder
        }
        // Nonsense ("--anneal_lr maybe") is a row of BadInputSuiteTests.
    }

    [Fact]
    public void Help_ShowsTheOriginalsDefaults_AndKebabAliases()
    {
        var help = CliRunner.InProcess("classifier-train", "--help");
        Assert.Equal(0, help.ExitCode);
        foreach (var expected in new[] { "--iterations", "150000", "--classifier_attention_resolutions", "32,16,8", "--classifier-width", "0.0003" })
            Assert.Contains(expected, help.Output);
    }
}
