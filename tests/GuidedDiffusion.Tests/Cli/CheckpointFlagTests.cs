using System.Globalization;

namespace GuidedDiffusion.Tests.Cli;

/// <summary>
/// <c>image-train --use_checkpoint</c> and <c>classifier-train --classifier_use_checkpoint</c> turn gradient
/// checkpointing on: the run reports the blocks its backward passes recomputed, and trains as without it.
/// </summary>
public class CheckpointFlagTests
{
    private const string Reported = "gradient checkpointing:";

    [Fact]
    public void Help_DescribesCheckpointing_AsDoingSomething()
    {
        var image = CliRunner.InProcess("image-train", "--help").Output;
        Assert.Contains("--use_checkpoint", image);
        Assert.DoesNotContain("accepted; no effect", image);
        Assert.Contains("recomputed in the backward", image);
        var classifier = CliRunner.InProcess("classifier-train", "--help").Output;
        Assert.Contains("--classifier_use_checkpoint", classifier);
    }

    [Fact]
    public void ImageTrain_UseCheckpoint_RecomputesBlocks_AndTrainsAsWithout()
    {
        string[] common = ["--iterations", "2", "--batch_size", "2", "--log_interval", "1", "--save_interval", "1000", "--num_workers", "0"];
        CompareRuns("image-train", common, "--use_checkpoint", "loss");
    }

    [Fact]
    public void ClassifierTrain_ClassifierUseCheckpoint_RecomputesBlocks_AndTrainsAsWithout()
    {
        string[] common = ["--iterations", "2", "--batch_size", "4", "--log_interval", "1", "--save_interval", "1000",
            "--eval_interval", "1000", "--eval_table", "False", "--num_workers", "0"];
        CompareRuns("classifier-train", common, "--classifier_use_checkpoint", "train_loss");
    }

    /// <summary>
    /// Trains twice on the bundled demo data, without and with <paramref name="flag"/> True: only the second run
    /// reports recomputed blocks, the first step's loss is the same number (the forward is unchanged) and every
    /// logged value agrees to float32 rounding (the diffusion UNet's gradients may differ in the last bits, see
    /// Models/GradientCheckpointTests).
    /// </summary>
    private static void CompareRuns(string command, string[] common, string flag, string lossColumn)
    {
        var dir = Path.Combine(Path.GetTempPath(), "gd-ckpt-" + Guid.NewGuid().ToString("N"));
        try
        {
            var plain = CliRunner.InProcess([command, .. common, "--log_dir", Path.Combine(dir, "plain")]);
            Assert.True(plain.ExitCode == 0, plain.Error);
            var checkpointed = CliRunner.InProcess([command, .. common, flag, "True", "--log_dir", Path.Combine(dir, "checkpointed")]);
            Assert.True(checkpointed.ExitCode == 0, checkpointed.Error);

            Assert.DoesNotContain(Reported, plain.Output);
            var line = checkpointed.Output.Split('\n').SingleOrDefault(l => l.StartsWith(Reported, StringComparison.Ordinal));
            Assert.True(line is not null, $"{command} {flag} True did not report recomputed blocks: checkpointing is off.");
            long recomputed = long.Parse(line[Reported.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            Assert.True(recomputed >= 2 * 4, line);  // two steps of a model with several blocks

            var a = ReadProgress(Path.Combine(dir, "plain", "progress.csv"));
            var b = ReadProgress(Path.Combine(dir, "checkpointed", "progress.csv"));
            Assert.Equal(a.Count, b.Count);
            Assert.Equal(a[0][lossColumn], b[0][lossColumn]);
            for (int row = 0; row < a.Count; row++)
            {
                Assert.Equal(a[row].Keys, b[row].Keys);
                foreach (var (key, value) in a[row])
                {
                    if (value.Length == 0 || b[row][key].Length == 0) { Assert.Equal(value, b[row][key]); continue; }
                    double x = double.Parse(value, CultureInfo.InvariantCulture), y = double.Parse(b[row][key], CultureInfo.InvariantCulture);
                    Assert.True(Math.Abs(x - y) <= 1e-5 * Math.Max(1, Math.Abs(x)), $"step {row} {key}: {x} without, {y} with {flag}");
                }
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    private static List<Dictionary<string, string>> ReadProgress(string path)
    {
        var lines = File.ReadAllLines(path).Where(l => l.Length > 0).ToArray();
        var header = lines[0].Split(',');
        return lines.Skip(1).Select(l =>
        {
            var cells = l.Split(',');
            return header.Select((h, i) => (h, v: i < cells.Length ? cells[i] : "")).ToDictionary(p => p.h, p => p.v);
        }).ToList();
    }
}
