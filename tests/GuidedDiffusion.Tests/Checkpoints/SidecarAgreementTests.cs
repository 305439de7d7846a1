using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Cli;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Tests.Cli;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Tests.Support;

namespace GuidedDiffusion.Tests.Checkpoints;

/// <summary>
/// Flags beside a checkpoint with a sidecar: those that agree with it pass; every one that disagrees is named,
/// with both values, in one error spelled as the command spells it.
/// </summary>
public class SidecarAgreementTests
{
    private const string Original = "checkpoints/original";

    /// <summary>The original's two files with sidecars of ours describing them (as if our trainers had written them).</summary>
    private static (string Model, string Classifier, string Dir) WithSidecars()
    {
        var dir = TestImages.TempDir();
        var model = Path.Combine(dir, "model000002.pt");
        File.Copy(Reference.PathOf($"{Original}/image_train/model000002.pt"), model);
        Write(model, new CheckpointManifest { CompletedSteps = 2, DiffusionModel = OriginalCheckpointTests.UNetFlags, Diffusion = new DiffusionConfig { DiffusionSteps = 100 } });
        var classifierDir = Path.Combine(dir, "classifier");
        Directory.CreateDirectory(classifierDir);
        var classifier = Path.Combine(classifierDir, "model000001.pt");
        File.Copy(Reference.PathOf($"{Original}/classifier_train/model000001.pt"), classifier);
        Write(classifier, new CheckpointManifest { CompletedSteps = 2, Classifier = OriginalCheckpointTests.ClassifierFlags, Diffusion = new DiffusionConfig { DiffusionSteps = 100 } });
        return (model, classifier, dir);
    }

    private static void Write(string checkpoint, CheckpointManifest manifest) =>
        File.WriteAllText(CheckpointManifest.PathFor(checkpoint), JsonSerializer.Serialize(manifest, CheckpointManifest.JsonOptions));

    private static (int Exit, string Error) Run(params string[] args)
    {
        var result = CliRunner.InProcess(args);
        return (result.ExitCode, result.Error);
    }

    [Fact]
    public void ClassifierSample_FlagsThatAgreeWithTheSidecars_AreAccepted()
    {
        var (model, classifier, dir) = WithSidecars();
        // The original README's habit: every model flag repeated, all agreeing with the sidecar.
        var run = Run("classifier-sample", "--model_path", model, "--classifier_path", classifier, "--image_size", "64", "--num_channels", "32",
            "--num_res_blocks", "0", "--channel_mult", "1", "--num_heads", "1", "--diffusion_steps", "100", "--classifier_width", "64",
            "--classifier_depth", "0", "--classifier_pool", "adaptive", "--timestep_respacing", "2", "--num_samples", "1", "--batch_size", "1",
            "--out_dir", Path.Combine(dir, "samples"));
        Assert.True(run.Exit == 0, run.Error);
        Assert.True(File.Exists(Path.Combine(dir, "samples", "samples_1x64x64x3.npz")));
    }

    [Fact]
    public void ClassifierSample_EveryDisagreeingModelFlag_IsNamedWithBothValues()
    {
        var (model, classifier, _) = WithSidecars();
        var run = Run("classifier-sample", "--model_path", model, "--classifier_path", classifier, "--image_size", "32", "--num_channels", "64",
            "--num_heads", "1", "--noise_schedule", "cosine");
        Assert.Equal(2, run.Exit);
        var line = Assert.Single(run.Error.Trim().Split('\n'));
        Assert.StartsWith("error: --model_path: ", line);
        Assert.Contains("--image_size 32 (sidecar: 64)", line);
        Assert.Contains("--num_channels 64 (sidecar: 32)", line);
        Assert.Contains("--noise_schedule cosine (sidecar: linear)", line);
        Assert.DoesNotContain("--num_heads", line);  // it agrees
        Assert.Contains("--timestep_respacing may differ", line);
    }

    [Fact]
    public void DisagreeingClassifierFlags_AreNamedAsEachCommandSpellsThem()
    {
        var (model, classifier, _) = WithSidecars();
        var sample = Run("classifier-sample", "--model_path", model, "--classifier_path", classifier, "--image_size", "64",
            "--classifier_width", "128", "--classifier_num_head_channels", "32", "--classifier_depth", "0");
        Assert.Equal(2, sample.Exit);
        var line = Assert.Single(sample.Error.Trim().Split('\n'));
        Assert.StartsWith("error: --classifier_path: ", line);
        Assert.Contains("--classifier_width 128 (sidecar: 64)", line);
        Assert.Contains("--classifier_num_head_channels 32 (sidecar: 64)", line);
        Assert.DoesNotContain("--classifier_depth", line);

        var image = Path.Combine(Path.GetDirectoryName(classifier)!, "a_1.png");
        File.WriteAllBytes(image, TestImages.Png(64, 64, (x, y) => new SkiaSharp.SKColor(10, 20, 30)));
        var classify = Run("classify", "--model_path", classifier, "--image_size", "64", "--num_head_channels", "32", "--classifier_depth", "0", image);
        Assert.Equal(2, classify.Exit);
        line = Assert.Single(classify.Error.Trim().Split('\n'));
        Assert.StartsWith("error: --model_path: ", line);
        Assert.Contains("--num_head_channels 32 (sidecar: 64)", line);
        Assert.DoesNotContain("--classifier_num_head_channels", line);
        Assert.Equal(0, Run("classify", "--model_path", classifier, "--image_size", "64", "--classifier_depth", "0", image).Exit);
    }
}
