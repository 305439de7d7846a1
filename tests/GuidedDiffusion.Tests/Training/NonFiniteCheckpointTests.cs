using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Training;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Training;

/// <summary>Issue 24: <c>--resume_checkpoint auto</c> never continues from weights a diverged run wrote.</summary>
public class NonFiniteCheckpointTests
{
    [Fact]
    public void ResumeAuto_PassesOverACheckpointHoldingNaN_AndSaysSo()
    {
        var train = TrainingFixtures.ImageFolder(classes: 2, perClass: 4, size: 64);
        var log = Path.Combine(Path.GetTempPath(), "gd-nanresume-" + Guid.NewGuid().ToString("N"));
        var config = TrainingFixtures.ShortRun(train, train, log, iterations: 3);
        config = config with { Checkpoints = config.Checkpoints with { SaveInterval = 1 } };
        var classifier = TrainingFixtures.SmallClassifier(null);
        new ClassifierTrainingJob(config, classifier, TrainingFixtures.Diffusion).Run();
        var checkpoints = CheckpointStore.CompleteCheckpoints(log).ToList();
        Assert.True(checkpoints.Count >= 2, string.Join(", ", checkpoints));
        string newest = checkpoints[0], older = checkpoints[1];

        // A diverged run's newest file: the same keys, one weight NaN.
        var stateDict = StateDictIO.Read(newest);
        var key = stateDict.Keys.First(k => k.EndsWith(".weight", StringComparison.Ordinal));
        stateDict[key] = full_like(stateDict[key], double.NaN);
        StateDictIO.Write(newest, stateDict);

        var resume = ResumePoint.Find("auto", log, TrainingFixtures.SmallClassifier(2), allowMismatch: false);
        Assert.NotNull(resume);
        Assert.Equal(Path.GetFullPath(older), Path.GetFullPath(resume!.ModelPath));
        Assert.Equal(new[] { newest }, resume.SkippedNonFinite);

        // With every checkpoint non-finite there is nothing to continue from: one clear error, nothing moved.
        foreach (var path in checkpoints.Skip(1))
        {
            var sd = StateDictIO.Read(path);
            sd[key] = full_like(sd[key], double.PositiveInfinity);
            StateDictIO.Write(path, sd);
        }
        var e = Assert.Throws<CheckpointException>(() => ResumePoint.Find("auto", log, TrainingFixtures.SmallClassifier(2), allowMismatch: false));
        Assert.Contains("every checkpoint", e.Message);
        Assert.All(checkpoints, path => Assert.True(File.Exists(path)));
    }
}
