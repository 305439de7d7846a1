using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Models;
using GuidedDiffusion.Training;

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
        var report = NoiseLevelEvaluator.Run(classifier, Validation(fixture, classifier), Fast);

        Assert.Equal(new[] { 50, 150, 250, 350, 450, 550, 650, 750, 850, 950 }, report.Levels.Select(l => l.Timestep));
        Assert.Equal(TrainedColoursFixture.ColourNames, report.Classes);
        var low = report.Levels[0];
        var high = report.Levels[^1];
        Assert.True(low.Acc1 >= 0.9, $"acc@1 at t=50 is {low.Acc1}; the colours should be easy there.\n{report.FormatTable()}");
        Assert.True(low.Acc1 > high.Acc1, $"acc@1 at t=50 ({low.Acc1}) should exceed t=950 ({high.Acc1}).\n{report.FormatTable()}");
        Assert.True(low.Loss < high.Loss, $"loss at t=50 ({low.Loss}) should be below t=950 ({high.Loss}).");
        foreach (var level in report.Levels)
        {
            Assert.Equal(4 * TrainedColoursFixture.ValPerClass, level.Samples);
            Assert.Null(level.Acc5); // four classes: no top-5
            Assert.InRange(level.Ece, 0, 1);
            Assert.NotNull(level.GradNorm);
            Assert.True(double.IsFinite(level.GradNorm!.Value) && level.GradNorm > 0, $"grad norm at t={level.Timestep}: {level.GradNorm}");
            Assert.Equal(4, level.PerClassAccuracy.Count);
            // Per-class accuracy averages back to acc@1 (balanced classes).
            Assert.Equal(level.Acc1, level.PerClassAccuracy.Average(a => a!.Value), 6);
        }
    }

    [Fact]
    public void Evaluate_IsDeterministicForASeed_AndRepeatsMultiplySamples()
    {
        using var classifier = TrainedClassifier.Load(fixture.ModelPath, new ClassifierConfig(), new DiffusionConfig(), flagsGiven: false);
        var source = Validation(fixture, classifier);
        var options = Fast with { Timesteps = [600], ComputeGradNorm = false };
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
        Assert.Equal(4 * TrainedColoursFixture.ValPerClass, single.Samples);
        Assert.Equal(8 * TrainedColoursFixture.ValPerClass, twoDraws.Samples);
        Assert.NotEqual(single.Loss, twoDraws.Loss); // the second draw is different noise
    }

    [Fact]
    public void GradNorm_DoesNotDependOnChunkSize()
    {
        using var classifier = TrainedClassifier.Load(fixture.ModelPath, new ClassifierConfig(), new DiffusionConfig(), flagsGiven: false);
        var source = Validation(fixture, classifier);
        // Chunks of 5 and of 12 must give the same per-sample gradients (samples are independent in eval mode).
        var options = Fast with { Timesteps = [300], GradChunkSize = 5 };
        var one = NoiseLevelEvaluator.Run(classifier, source, options).Levels.Single();
        var many = NoiseLevelEvaluator.Run(classifier, source, options with { GradChunkSize = 12 }).Levels.Single();
        Assert.Equal(one.GradNorm!.Value, many.GradNorm!.Value, 3);
        Assert.Equal(one.Loss, many.Loss, 5);
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
