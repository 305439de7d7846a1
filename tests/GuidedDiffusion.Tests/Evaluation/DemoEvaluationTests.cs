using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Cli;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Tests.Evaluation;

public sealed class DemoEvaluationTests
{
    [Fact]
    public void ClassifierEval_WithoutDataDir_UsesTheDemoValidationSplit()
    {
        // An untrained 10-class model saved as an "original" .pt (no sidecar): the architecture comes from the flags.
        var dir = Path.Combine(Path.GetTempPath(), "gd-eval-demo-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            TorchSharp.torch.manual_seed(0);
            using (var model = new EncoderUNet(TrainedColoursFixture.TinyConfig with { NumClasses = 10 }))
                StateDictIO.Save(model, Path.Combine(dir, "model.pt"));
            int code = Program.BuildRoot().Parse([
                "classifier-eval", "--model_path", Path.Combine(dir, "model.pt"), "--timesteps", "500", "--grad_norm", "False",
                "--batch_size", "250", "--num_workers", "0", "--image_size", "32", "--channel_mult", "1,2", "--classifier_width", "32",
                "--classifier_depth", "1", "--classifier_attention_resolutions", "16", "--num_head_channels", "32"]).Invoke();
            Assert.Equal(0, code);

            var report = EvaluationFiles.ReadJson(Path.Combine(dir, EvaluationFiles.JsonName));
            Assert.Equal(FashionMnistDemo.ValidationCount, report.Images);
            Assert.Equal(FashionMnistDemo.Classes.Names, report.Classes);
            var level = report.Levels.Single();
            Assert.Equal(FashionMnistDemo.ValidationCount, level.Samples);
            Assert.NotNull(level.Acc5); // ten classes: top-5 is reported
            Assert.True(level.Acc5 >= level.Acc1);
            Assert.Contains("Fashion-MNIST", report.Data);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
