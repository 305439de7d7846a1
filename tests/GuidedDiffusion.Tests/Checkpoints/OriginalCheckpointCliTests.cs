using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Tests.Cli;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Tests.Support;
using SkiaSharp;

namespace GuidedDiffusion.Tests.Checkpoints;

/// <summary>
/// Files the original's scripts wrote (Reference/checkpoints/original), through the CLI with the original's flags:
/// resume its runs with its AdamW state, classify with its classifier; and through the sampling job: sample with its
/// diffusion model guided by its classifier.
/// </summary>
public class OriginalCheckpointCliTests
{
    private const string Original = "checkpoints/original";

    /// <summary>classifier_train.py's flags for the file (see the folder's README) but --image_size 64, as our flags.</summary>
    private static readonly string[] ClassifierFlags =
    [
        "--classifier_width", "64", "--classifier_depth", "0", "--classifier_attention_resolutions", "8",
        "--classifier_use_scale_shift_norm", "False", "--classifier_resblock_updown", "False", "--classifier_pool", "adaptive",
    ];

    /// <summary>image_train.py's flags; its --attention_resolutions 16 is never reached with one level, which we refuse, so "".</summary>
    private static readonly string[] UNetFlags =
    [
        "--image_size", "64", "--num_channels", "32", "--num_res_blocks", "0", "--channel_mult", "1", "--attention_resolutions", "",
        "--num_heads", "1", "--diffusion_steps", "100",
    ];

    private static string Images(string dir)
    {
        var images = Path.Combine(dir, "images");
        Directory.CreateDirectory(images);
        foreach (var (name, shade) in new[] { ("cat_0", 40), ("cat_1", 80), ("dog_0", 160), ("dog_1", 220) })
            File.WriteAllBytes(Path.Combine(images, name + ".png"), TestImages.Png(64, 64, (x, y) => new SKColor((byte)shade, (byte)(x * 4), (byte)(y * 4))));
        return images;
    }

    /// <summary>Copies the original's files of <paramref name="run"/> to a fresh folder (resuming reads its siblings).</summary>
    private static string CopyRun(string run, string dir)
    {
        var copy = Path.Combine(dir, run);
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.GetFiles(Reference.PathOf($"{Original}/{run}"), "*.pt"))
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        return copy;
    }

    [Fact]
    public void ClassifierTrain_ResumesTheOriginalsRun_WithItsAdamWState()
    {
        var dir = TestImages.TempDir();
        var run = CopyRun("classifier_train", dir);
        var output = Path.Combine(dir, "out");
        var result = CliRunner.InProcess(["classifier-train", "--data_dir", Images(dir), "--image_size", "64", .. ClassifierFlags, "--num_classes", "1000",
            "--iterations", "3", "--batch_size", "2", "--num_workers", "0",
            "--resume_checkpoint", Path.Combine(run, "model000001.pt"), "--log_dir", output]);
        Assert.True(result.ExitCode == 0, result.Error);
        // model000001.pt holds 2 updates (its opt file's AdamW step says so); one more makes 3.
        Assert.Contains("at 2 completed steps", result.Output);
        Assert.Equal(3, CheckpointStore.OptimizerSteps(Path.Combine(output, "opt000002.pt")));
    }

    [Theory]
    [InlineData("image_train", "model000002.pt", 2)]
    [InlineData("image_train_fp16", "model000001.pt", 1)]
    public void ImageTrain_ResumesTheOriginalsRun_WithItsAdamWStateAndEma(string folder, string model, long done)
    {
        var dir = TestImages.TempDir();
        var run = CopyRun(folder, dir);
        var output = Path.Combine(dir, "out");
        var result = CliRunner.InProcess(["image-train", "--data_dir", Images(dir), .. UNetFlags, "--lr_anneal_steps", "3", "--batch_size", "2",
            "--num_workers", "0", "--resume_checkpoint", Path.Combine(run, model), "--log_dir", output]);
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains($"at {done} completed steps", result.Output);
        Assert.Equal(3, CheckpointStore.OptimizerSteps(Path.Combine(output, "opt000002.pt")));
        bool emaKept = File.Exists(Path.Combine(run, model.Replace("model", "ema_0.9999_")));
        Assert.Equal(!emaKept, result.Output.Contains("no EMA file"));
    }

    [Fact]
    public void ClassifierSample_WithTheOriginalsDiffusionModelAndClassifier_WritesSamples()
    {
        var dir = TestImages.TempDir();
        var warnings = new StringWriter();
        var result = new GuidedSamplingJob(new GuidedSamplingOptions
        {
            Model = new DiffusionModelSource
            {
                Path = Reference.PathOf($"{Original}/image_train/ema_0.9999_000002.pt"),
                Architecture = OriginalCheckpointTests.UNetFlags,
                Diffusion = new DiffusionConfig { DiffusionSteps = 100, TimestepRespacing = "3" },
            },
            ClassifierPath = Reference.PathOf($"{Original}/classifier_train/model000001.pt"),
            Classifier = OriginalCheckpointTests.ClassifierFlags,
            NumSamples = 2,
            BatchSize = 2,
            ClassifierScale = 1,
            OutDir = dir,
        }, new RunContext { Warnings = warnings }).Run();
        Assert.Equal(Path.Combine(dir, "samples_2x64x64x3.npz"), result.NpzPath);
        Assert.True(File.Exists(result.NpzPath));
        // The sampling respacing is not mistaken for the sidecar-less classifier's training respacing.
        Assert.DoesNotContain("was trained with", warnings.ToString());
    }

    [Fact]
    public void Classify_WithTheOriginalsClassifier_PrintsItsPredictions()
    {
        var dir = TestImages.TempDir();
        var image = Directory.GetFiles(Images(dir)).First();
        var result = CliRunner.InProcess(["classify", "--model_path", Reference.PathOf($"{Original}/classifier_train/model000001.pt"),
            .. ClassifierFlags, "--num_classes", "1000", image]);
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains(Path.GetFileName(image), result.Output);
    }
}
