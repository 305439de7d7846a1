using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Tests.Evaluation;

[CollectionDefinition(Name)]
public sealed class TrainedColoursCollection : ICollectionFixture<TrainedColoursFixture>
{
    public const string Name = "Evaluation: trained colours checkpoint";
}

[Collection(TrainedColoursCollection.Name)]
public sealed class NoiseLevelEvaluatorTests(TrainedColoursFixture fixture)
{
    private static readonly EvaluationOptions Fast = new() { NumWorkers = 0, BatchSize = 12 };

    private static ImageFolderSource Validation(TrainedColoursFixture f, TrainedClassifier c) =>
        new(f.ValDir, LabelRule.Prefix, new ClassMap(c.Classes));

    [Fact]
    public void Evaluate_LowNoiseAccuracyExceedsHighNoise()
    {
        using var classifier = TrainedClassifier.Load(fixture.ModelPath, new ClassifierConfig(), new DiffusionConfig(), flagsGiven: false);
        // Gradient norms are covered by the CLI test and GradNorm_DoesNotDependOnChunkSize; forward passes suffice here.
        var report = NoiseLevelEvaluator.Run(classifier, Validation(fixture, classifier), Fast with { ComputeGradNorm = false });

        Assert.Equal(new[] { 50, 150, 250, 350, 450, 550, 650, 750, 850, 950 }, report.Levels.Select(l => l.Timestep));
        Assert.Equal(TrainedColoursFixture.ColourNames, report.Classes);
        // A few dozen steps do not make a perfect classifier; what must hold is the ordering by noise level.
        double lowAcc = report.Levels.Take(3).Average(l => l.Acc1), highAcc = report.Levels.TakeLast(3).Average(l => l.Acc1);
        double lowLoss = report.Levels.Take(3).Average(l => l.Loss), highLoss = report.Levels.TakeLast(3).Average(l => l.Loss);
        var table = report.FormatTable();
        Assert.True(report.Levels[0].Acc1 >= 0.5, $"acc@1 at t=50 is {report.Levels[0].Acc1}, hardly above chance (0.25).\n{table}");
        Assert.True(lowAcc >= highAcc + 0.2, $"acc@1 at t=50..250 ({lowAcc:0.000}) should clearly exceed t=750..950 ({highAcc:0.000}).\n{table}");
        Assert.True(lowLoss < highLoss, $"loss at t=50..250 ({lowLoss:0.000}) should be below t=750..950 ({highLoss:0.000}).\n{table}");
        foreach (var level in report.Levels)
        {
            Assert.Equal(4 * TrainedColoursFixture.ValPerClass, level.Samples);
            Assert.Null(level.Acc5); // four classes: no top-5
            Assert.InRange(level.Ece, 0, 1);
            Assert.Null(level.GradNorm);
            Assert.Equal(4, level.PerClassAccuracy.Count);
            // Per-class accuracy averages back to acc@1 (balanced classes).
            Assert.Equal(level.Acc1, level.PerClassAccuracy.Average(a => a!.Value), 6);
        }
    }

    [Fact]
    public void Evaluate_IsDeterministicForASeed_AndRepeatsMultiplySamples()
    {
        using var classifier = TrainedClassifier.Load(fixture.ModelPath, new ClassifierConfig(), new DiffusionConfig(), flagsGiven: false);
        var source = new FirstImages(Validation(fixture, classifier), 12);
        var options = Fast with { Timesteps = [600], ComputeGradNorm = false, BatchSize = 6 };
        var single = NoiseLevelEvaluator.Run(classifier, source, options).Levels.Single();
        var again = NoiseLevelEvaluator.Run(classifier, source, options with { NumWorkers = 1 }).Levels.Single();
        // Another level alongside does not change the noise at t = 600: it depends on (seed, t, repeat, batch) only.
        var withOther = NoiseLevelEvaluator.Run(classifier, source, options with { Timesteps = [100, 600] }).Levels.Single(l => l.Timestep == 600);
        var otherSeed = NoiseLevelEvaluator.Run(classifier, source, options with { Seed = 7 }).Levels.Single();
        var twoDraws = NoiseLevelEvaluator.Run(classifier, source, options with { NoiseRepeats = 2 }).Levels.Single();

        Assert.Equal(single.Loss, again.Loss);
        Assert.Equal(single.Loss, withOther.Loss);
        Assert.Equal(single.Acc1, withOther.Acc1);
        Assert.NotEqual(single.Loss, otherSeed.Loss);
        Assert.Null(single.GradNorm);
        Assert.Equal(12, single.Samples);
        Assert.Equal(24, twoDraws.Samples);
        Assert.NotEqual(single.Loss, twoDraws.Loss); // the second draw is different noise
    }

    [Fact]
    public void GradNorm_DoesNotDependOnChunkSize()
    {
        using var classifier = TrainedClassifier.Load(fixture.ModelPath, new ClassifierConfig(), new DiffusionConfig(), flagsGiven: false);
        var source = new FirstImages(Validation(fixture, classifier), 6);
        // Chunks of 5 and of 12 must give the same per-sample gradients (samples are independent in eval mode).
        var options = Fast with { Timesteps = [300], GradChunkSize = 5 };
        var one = NoiseLevelEvaluator.Run(classifier, source, options).Levels.Single();
        Assert.True(one.GradNorm is > 0 && double.IsFinite(one.GradNorm.Value), $"grad norm {one.GradNorm}");
        var many = NoiseLevelEvaluator.Run(classifier, source, options with { GradChunkSize = 12 }).Levels.Single();
        Assert.Equal(one.GradNorm!.Value, many.GradNorm!.Value, 3);
        Assert.Equal(one.Loss, many.Loss, 5);
    }

    [Fact]
    public void GradNorm_EqualsDirectAutogradOfLogLikelihood()
    {
        // The guidance signal of cond_fn, computed by hand for one image: ‖∇ₓ log softmax(f(x_t, t))[y]‖₂ with the
        // evaluator's documented noise for (seed, t, repeat 0, batch 0).
        using var classifier = TrainedClassifier.Load(fixture.ModelPath, new ClassifierConfig(), new DiffusionConfig(), flagsGiven: false);
        var source = new FirstImages(Validation(fixture, classifier), 1);
        const int t = 400;
        var level = NoiseLevelEvaluator.Run(classifier, source, Fast with { Timesteps = [t], Seed = 3 }).Levels.Single();

        using var scope = TorchSharp.torch.NewDisposeScope();
        var batch = GuidedDiffusion.Data.Loading.DataLoader.EnumerateOnce(source, new() { ImageSize = 32, BatchSize = 1, NumWorkers = 0 }).Single();
        using var generator = new TorchSharp.torch.Generator((ulong)NoiseLevelEvaluator.NoiseSeed(3, t, 0, 0));
        var noise = TorchSharp.torch.randn(batch.Images.shape, generator: generator);
        var ts = TorchSharp.torch.tensor(new long[] { t });
        var x = classifier.Diffusion.Build().QSample(batch.Images, ts, noise).detach().requires_grad_(true);
        var logProbs = classifier.Model.forward(x, ts).log_softmax(1);
        var selected = logProbs[0, batch.Labels[0]];
        var grad = TorchSharp.torch.autograd.grad([selected], [x])[0];
        double expected = grad.norm().item<float>();

        Assert.Equal(expected, level.GradNorm!.Value, 5);
        Assert.Equal(-selected.item<float>(), level.Loss, 5);
    }

    [Fact]
    public void Evaluate_RejectsDataWithMoreClassesThanOutputs()
    {
        using var classifier = TrainedClassifier.Load(fixture.ModelPath, new ClassifierConfig(), new DiffusionConfig(), flagsGiven: false);
        var dir = fixture.NewTempDir("five-classes");
        TrainedColoursFixture.WriteColours(dir, perClass: 1, seed: 3);
        File.Copy(Path.Combine(dir, "red_000.png"), Path.Combine(dir, "purple_000.png"));
        var e = Assert.Throws<DatasetException>(() => NoiseLevelEvaluator.Run(classifier, new ImageFolderSource(dir), Fast));
        Assert.Contains("5 classes", e.Message);
        Assert.Contains("4 outputs", e.Message);
    }
}

/// <summary>The first <paramref name="count"/> images of a source (the Evaluation tests keep autograd work small).</summary>
internal sealed class FirstImages(IImageSource inner, int count) : IImageSource
{
    public int Count => Math.Min(count, inner.Count);
    public ClassMap Classes => inner.Classes;
    public int LabelOf(int index) => inner.LabelOf(index);
    public string NameOf(int index) => inner.NameOf(index);
    public RgbImage Load(int index) => inner.Load(index);
}
