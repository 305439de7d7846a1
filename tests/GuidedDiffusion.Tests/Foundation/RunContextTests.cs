using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Cli;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Tests.Support;
using SkiaSharp;
using ClassifierSampleFixture = GuidedDiffusion.Tests.Guidance.ClassifierSampleCommandTests;

namespace GuidedDiffusion.Tests.Foundation;

/// <summary>
/// A job's <see cref="RunContext"/> reaches what it governs: the image decoder's pixel limit and its warning, and the
/// spelling of settings in the job's lines; two runs in one process keep their own.
/// </summary>
public sealed class RunContextTests : IDisposable
{
    private readonly string _folder = TestImages.TempDir();

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Classifies one 16×16 image (256 pixels) with the tiny guidance classifier under <paramref name="run"/>.</summary>
    private void Classify(RunContext run)
    {
        var classifier = Path.Combine(_folder, "model000001.pt");
        if (!File.Exists(classifier))
        {
            using (var model = Guidance.GuidanceReference.LoadClassifier()) StateDictIO.Save(model, classifier);
            TestCheckpoints.WriteSidecar(classifier, new CheckpointManifest { Classifier = ClassifierSampleFixture.TinyClassifier, Diffusion = new DiffusionConfig() });
        }
        var image = Path.Combine(_folder, "a_0.png");
        File.WriteAllBytes(image, TestImages.Png(16, 16, (x, y) => new SKColor((byte)(x * 15), (byte)(y * 15), 90)));
        new ClassificationJob(new ClassificationOptions { Classifier = new ClassifierSource { Path = classifier }, Images = [image] }, run).Run();
    }

    [Fact]
    public void PixelLimit_ReachesTheDecoder_WarningThroughTheContext()
    {
        var warnings = new StringWriter();
        Classify(new RunContext { MaxImagePixels = 200, Warnings = warnings });  // 256 > 200: decoded, with a warning
        Assert.Contains("a_0.png' has 16×16 = 256 pixels, more than the limit of 200", warnings.ToString());

        var refused = Assert.Throws<ImageDecodeException>(() => Classify(new RunContext { MaxImagePixels = 100 }));  // 256 > 2 × 100
        Assert.Contains("more than twice the limit of 100", refused.Message);
        Assert.Contains("--max_image_pixels", CliErrors.Describe(refused));

        var quiet = new StringWriter();
        Classify(new RunContext { Warnings = quiet });  // PIL's default limit
        Assert.Equal("", quiet.ToString());
    }

    [Fact]
    public void Lines_SpellSettingsAsTheContextSays_PerRun()
    {
        var marked = $"No {SettingText.Ref("data_dir")} given.";
        Assert.Equal("No data_dir given.", new RunContext().Show(marked));
        Assert.Equal("No --data_dir given.", new RunContext { Spelling = CliErrors.Flag }.Show(marked));
        var output = new StringWriter();
        new RunContext { Output = output, Spelling = name => $"<{name}>" }.Log(marked);
        Assert.Equal("No <data_dir> given." + Environment.NewLine, output.ToString());
    }

    [Fact]
    public void TrainingJob_DecodesUnderItsContextsLimit_AndSpellsItsWarningsByIt_PerRun()
    {
        // 64×64 = 4,096 pixels: above a limit of 3,000, below twice it, so decoded with a warning; 3 is no level's resolution.
        var data = Training.TrainingFixtures.ImageFolder(classes: 2, perClass: 4);
        TextWriter Train(RunContext run)
        {
            var logDir = Path.Combine(_folder, Guid.NewGuid().ToString("N"));
            var config = Training.TrainingFixtures.ShortRun(data, "", logDir, iterations: 1) with { Validation = new() { EvalTable = false } };
            new GuidedDiffusion.Training.ClassifierTrainingJob(config, Training.TrainingFixtures.SmallClassifier(null) with { AttentionResolutions = [8, 3] },
                new DiffusionConfig(), run).Run();
            return run.Warnings;
        }

        var limited = Train(new RunContext { MaxImagePixels = 3000, Warnings = new StringWriter(), Spelling = name => $"<{name}>" }).ToString()!;
        Assert.Matches(@"has 64×64 = 4\D?096 pixels, more than the limit of 3\D?000 ", limited);  // N0: the culture's group separator
        Assert.Contains("<classifier_attention_resolutions> 3 is never reached", limited);

        // Another run in the same process keeps PIL's default and bare names: nothing was left behind.
        var plain = Train(new RunContext { Warnings = new StringWriter() }).ToString()!;
        Assert.DoesNotContain("pixels, more than the limit", plain);
        Assert.Contains("warning: classifier_attention_resolutions 3 is never reached", plain);
    }

    [Fact]
    public void Validate_RefusesANonPositivePixelLimit_NamingIt()
    {
        var e = Assert.Throws<ConfigurationException>(() => Classify(new RunContext { MaxImagePixels = 0 }));
        Assert.Equal("max_image_pixels", e.Setting);
    }
}
