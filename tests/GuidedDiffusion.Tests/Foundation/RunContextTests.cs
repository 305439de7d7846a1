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
    public void Validate_RefusesANonPositivePixelLimit_NamingIt()
    {
        var e = Assert.Throws<ConfigurationException>(() => Classify(new RunContext { MaxImagePixels = 0 }));
        Assert.Equal("max_image_pixels", e.Setting);
    }
}
