using GuidedDiffusion.Evaluation;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Evaluation;

/// <summary>The diversity figure: mean pairwise L2 distance within a class, averaged over classes.</summary>
public sealed class FeatureDiversityTests
{
    [Fact]
    public void Measure_IsZeroForIdenticalFeatures()
    {
        using var scope = NewDisposeScope();
        var features = tensor(new float[] { 0.3f, -1.7f, 2.5f }).expand(40, 3).contiguous();
        var labels = Enumerable.Range(0, 40).Select(i => (long)(i % 4)).ToArray();
        var (mean, perClass) = FeatureDiversity.Measure(features, labels, 4);
        Assert.Equal(0.0, mean);
        Assert.All(perClass, d => Assert.Equal(0.0, d));
    }

    [Fact]
    public void Measure_IsTheMeanPairwiseDistancePerClass_AveragedOverClassesWithTwoOrMore()
    {
        using var scope = NewDisposeScope();
        // Class 0: (0,0), (3,4), (6,8): distances 5, 10, 5 → mean 20/3. Class 1: (1,1), (1,2): distance 1.
        // Class 2: a single sample (no pair, left out). Class 3: none.
        var features = tensor(new float[] { 0, 0, 3, 4, 1, 1, 6, 8, 1, 2, 9, 9 }, new long[] { 6, 2 });
        long[] labels = [0, 0, 1, 0, 1, 2];
        var (mean, perClass) = FeatureDiversity.Measure(features, labels, 4);
        Assert.Equal(20.0 / 3, perClass[0], 12);
        Assert.Equal(1.0, perClass[1], 12);
        Assert.True(double.IsNaN(perClass[2]) && double.IsNaN(perClass[3]));
        Assert.Equal((20.0 / 3 + 1.0) / 2, mean, 12);
    }

    [Fact]
    public void Measure_GrowsWithTheSpread_AndDoesNotMixClasses()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(5);
        var features = randn(new long[] { 60, 8 }, generator: generator);
        var labels = Enumerable.Range(0, 60).Select(i => (long)(i % 3)).ToArray();
        var (narrow, _) = FeatureDiversity.Measure(features, labels, 3);
        var (wide, _) = FeatureDiversity.Measure(features * 2.5, labels, 3);
        Assert.True(narrow > 0);
        Assert.Equal(2.5 * narrow, wide, 5); // float32 features: the scaling rounds
        // Moving each class to its own far-away centre changes no within-class distance.
        var shifted = features + tensor(labels).to_type(ScalarType.Float32).unsqueeze(1) * 100;
        Assert.Equal(narrow, FeatureDiversity.Measure(shifted, labels, 3).Mean, 4);
    }

    [Fact]
    public void Measure_RejectsMismatchedShapesAndLabels()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => FeatureDiversity.Measure(zeros(3, 2), [0, 1], 2));
        Assert.Throws<ArgumentException>(() => FeatureDiversity.Measure(zeros(2, 2), [0, 2], 2));
    }
}
