using System.Globalization;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Tests.Support;
using GuidedDiffusion.Tests.Training;
using GuidedDiffusion.Training;
using GuidedDiffusion.Adversarial;
using Xunit.Abstractions;

namespace GuidedDiffusion.Tests.Distributed;

/// <summary>classifier-train under <c>mpiexec -n 2</c> against the same run in one process.</summary>
[Collection("mpi")]
public class DataParallelTrainingTests(ITestOutputHelper output)
{
    // Width 64: with GroupNorm(32, 32) every group is one channel, so the bias of a conv feeding a norm gets
    // only rounding noise as gradient, which AdamW would blow up to ±lr per step on either side.
    private static readonly string[] TinyFlags =
    {
        "--image_size", "32", "--channel_mult", "1,2", "--classifier_width", "64", "--classifier_depth", "1",
        "--classifier_attention_resolutions", "16", "--num_head_channels", "64",
    };

    [MpiFact]
    public void TwoRanksOfFour_MatchOneRankOfEight() => AssertTwoRanksOfFourMatchOneRankOfEight([], null);

    /// <summary>
    /// Each rank attacks its own four samples. Samples are independent in this model (GroupNorm normalises each one on
    /// its own; no dropout), so the two halves together are the single process's attacked batch of eight.
    /// </summary>
    [MpiFact]
    public void Adversarial_TwoRanksOfFour_MatchOneRankOfEight() =>
        AssertTwoRanksOfFourMatchOneRankOfEight(["--adversarial", "True", "--attack_eps", "2", "--attack_steps", "3"],
            new L2PgdOptions { Eps = 2, Steps = 3 });

    private void AssertTwoRanksOfFourMatchOneRankOfEight(string[] extraFlags, L2PgdOptions? adversarial)
    {
        var data = TrainingFixtures.ImageFolder(8, 4, size: 32);
        var mpiLog = TestImages.TempDir();
        var loop = new[]
        {
            "--data_dir", data, "--iterations", "5", "--log_interval", "1", "--save_interval", "100", "--noised", "False",
            "--random_crop", "False", "--random_flip", "False", "--shuffle", "False", "--num_workers", "1", "--lr", "1e-4",
        };
        var result = MpiLauncher.RunDll("guided-diffusion.dll",
            new[] { "classifier-train", "--distributed", "mpi", "--batch_size", "4", "--check_rank_sync", "True", "--log_dir", mpiLog }
                .Concat(loop).Concat(TinyFlags).Concat(extraFlags), ranks: 2, TimeSpan.FromMinutes(3));
        output.WriteLine(result.StandardOutput);
        output.WriteLine(result.StandardError);
        Assert.False(result.TimedOut, "mpiexec timed out");
        Assert.Equal(0, result.ExitCode);

        // The same data and order in a single process with the whole batch of 8.
        var singleLog = TestImages.TempDir();
        var training = new TrainingConfig
        {
            Data = new() { DataDir = data, RandomCrop = false, RandomFlip = false, Shuffle = false, NumWorkers = 1, BatchSize = 8 },
            Objective = new() { Noised = false, Adversarial = adversarial },
            Length = new() { Iterations = 5 },
            Optimizer = new() { Lr = 1e-4 },
            Checkpoints = new() { LogInterval = 1, SaveInterval = 100, LogDir = singleLog },
        };
        var classifier = new ClassifierConfig
        {
            ImageSize = 32,
            ChannelMult = [1, 2],
            Width = 64,
            Depth = 1,
            AttentionResolutions = [16],
            NumHeadChannels = 64,
            NumClasses = null,
        };
        new ClassifierTrainingJob(training, classifier, new()).Run();

        var parallel = StateDictIO.Read(Path.Combine(mpiLog, "model000004.pt"));
        var single = StateDictIO.Read(Path.Combine(singleLog, "model000004.pt"));
        Assert.Equal(single.Keys, parallel.Keys);
        // Same gradients up to float32 summation order (a mean of per-rank means, other thread counts). AdamW
        // normalises each element by its own gradient scale, so an element whose gradient is a cancellation at
        // the rounding floor moves by up to ±lr per step on either side (measured: 6 of 1.5 M elements above
        // 1e-5, worst 3.3e-5, with lr 1e-4 × 5 steps = 5e-4). Every element must be within 1e-4, and all but
        // 1 in 10,000 within 1e-5.
        long total = 0, above = 0;
        double worst = 0;
        foreach (var (key, value) in single)
        {
            var diff = (parallel[key] - value).abs();
            total += diff.numel();
            above += diff.gt(1e-5).sum().item<long>();
            worst = Math.Max(worst, diff.max().item<float>());
        }
        output.WriteLine($"{above} of {total} elements differ by more than 1e-5; largest difference {worst:E2}");
        Assert.True(worst < 1e-4, $"largest difference {worst:E2}");
        Assert.True(above * 10_000 < total, $"{above} of {total} elements differ by more than 1e-5");

        // Only rank 0 wrote progress.csv: one row per step, samples = (step + 1) · 4 · 2.
        var lines = File.ReadAllLines(Path.Combine(mpiLog, "progress.csv"));
        var header = lines[0].Split(',');
        var samples = lines.Skip(1).Select(l => l.Split(',')[Array.IndexOf(header, "samples")]).ToArray();
        Assert.Equal(new[] { "8", "16", "24", "32", "40" }, samples);
        Assert.Single(Directory.GetFiles(mpiLog, "progress*.csv"));
    }

    [MpiFact]
    public void ARankThatFails_EndsTheWholeJobQuickly()
    {
        // Three files for two ranks: rank 1 gets one image, fewer than its batch of 2, fails while building its
        // loader, and must abort rank 0 instead of leaving it waiting in the first gradient all-reduce.
        var data = TrainingFixtures.ImageFolder(1, 2, size: 32);
        File.Copy(Path.Combine(data, "class0_000.png"), Path.Combine(data, "other_000.png"));
        var result = MpiLauncher.RunDll("guided-diffusion.dll",
            new[] { "classifier-train", "--distributed", "mpi", "--data_dir", data, "--batch_size", "2", "--iterations", "3",
                "--log_dir", TestImages.TempDir() }.Concat(TinyFlags), ranks: 2, TimeSpan.FromMinutes(2));
        output.WriteLine(result.StandardError);
        Assert.False(result.TimedOut, "the job hung instead of aborting");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("rank 1:", result.StandardError);
        Assert.True(result.Elapsed < TimeSpan.FromSeconds(60), $"took {result.Elapsed}");
    }
}
