using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using ClassifierSampleFixture = GuidedDiffusion.Tests.Guidance.ClassifierSampleCommandTests;

namespace GuidedDiffusion.Tests.Checkpoints;

/// <summary>
/// What loading a classifier and a diffusion model share (one implementation): an EMA file finds the sidecar of its
/// save, a failed load leaves no network behind, and warnings go to the caller.
/// </summary>
public sealed class TrainedModelLoadingTests : IDisposable
{
    private readonly string _folder = TestImages.TempDir();

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>The tiny guidance classifier saved as classifier-train saves its EMA weights, with named classes.</summary>
    private string ClassifierAsEma()
    {
        var ema = Path.Combine(_folder, "ema_0.9999_000002.pt");
        using (var classifier = Guidance.GuidanceReference.LoadClassifier()) StateDictIO.Save(classifier, ema);
        TestCheckpoints.WriteSidecar(Path.Combine(_folder, "model000002.pt"), new CheckpointManifest
        {
            Classifier = ClassifierSampleFixture.TinyClassifier,
            Diffusion = new DiffusionConfig { DiffusionSteps = 50 },
            Classes = ["a", "b", "c", "d", "e"],
        });
        return ema;
    }

    [Fact]
    public void Classifier_EmaFile_IsDescribedByTheSidecarOfItsSave()
    {
        var ema = ClassifierAsEma();
        // No architecture given: without the sidecar the defaults would describe another network and the load would fail.
        using var classifier = new ClassifierSource { Path = ema }.Load();
        Assert.Equal(ClassifierSampleFixture.TinyClassifier.Width, classifier.Config.Width);
        Assert.Equal(["a", "b", "c", "d", "e"], classifier.Classes);
        Assert.Equal(50, classifier.Diffusion.DiffusionSteps);
    }

    [Fact]
    public void DiffusionModel_EmaFile_IsDescribedByTheSidecarOfItsSave()
    {
        var ema = TestCheckpoints.DiffusionModelAsEma(_folder, ClassifierSampleFixture.TinyUNet, new DiffusionConfig { LearnSigma = true, DiffusionSteps = 40 });
        using var model = new DiffusionModelSource { Path = ema, Diffusion = new DiffusionConfig { TimestepRespacing = "4" } }.Load();
        Assert.Equal(Path.Combine(_folder, "model000001.json"), model.Sidecar);
        Assert.Equal(ClassifierSampleFixture.TinyUNet.NumChannels, model.Config.NumChannels);
        Assert.Equal(40, model.Diffusion.DiffusionSteps);
        Assert.Equal("4", model.Diffusion.TimestepRespacing);  // the sampling setting always comes from the source
    }

    [Fact]
    public void FailedLoad_DisposesTheNetworkItBuilt()
    {
        // The same network built and filled three times: from a file that fits (then disposed by the caller), and from one
        // that does not (the loader's to dispose). Construction leaves the same temporaries either way; a network the failed
        // load left behind would add its parameters.
        var config = ClassifierSampleFixture.TinyClassifier with { Width = 64 };
        var fits = Path.Combine(_folder, "fits.pt");
        int parameters;
        using (var classifier = new EncoderUNet(config))
        {
            StateDictIO.Save(classifier, fits);
            parameters = classifier.parameters().Count();
        }
        var other = Path.Combine(_folder, "other.pt");
        using (var classifier = Guidance.GuidanceReference.LoadClassifier()) StateDictIO.Save(classifier, other);

        long LeftAlive(Action load)
        {
            var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            for (int i = 0; i < 3; i++) load();
            return DisposeScopeManager.Statistics.ThreadTotalLiveCount - before;
        }
        LeftAlive(() => TrainedClassifier.Load(fits, config, new DiffusionConfig(), flagsGiven: true).Dispose());  // warm-up
        var succeeded = LeftAlive(() => TrainedClassifier.Load(fits, config, new DiffusionConfig(), flagsGiven: true).Dispose());
        var failed = LeftAlive(() => Assert.Throws<StateDictMismatchException>(() => TrainedClassifier.Load(other, config, new DiffusionConfig(), flagsGiven: true)));
        Assert.True(failed - succeeded < parameters,
            $"3 failed loads left {failed} tensors alive, 3 disposed ones {succeeded}: a {parameters}-parameter network was not disposed");
    }

    [Fact]
    public void Classifier_Warnings_GoToTheCaller()
    {
        // 3 is no level's resolution of this 16-pixel classifier (16, 8): accepted as the original accepts it, with a warning.
        var config = ClassifierSampleFixture.TinyClassifier with { AttentionResolutions = [8, 3] };
        var bare = Path.Combine(_folder, "unreached.pt");
        using (var classifier = new EncoderUNet(config)) StateDictIO.Save(classifier, bare);
        var warnings = new List<string>();
        using var loaded = TrainedClassifier.Load(bare, config, new DiffusionConfig(), flagsGiven: true, warn: warnings.Add);
        var warning = Assert.Single(warnings);
        Assert.Contains("classifier_attention_resolutions 3 is never reached", SettingText.Plain(warning));
    }
}
