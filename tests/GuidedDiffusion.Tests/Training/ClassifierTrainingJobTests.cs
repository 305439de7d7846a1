using System.Globalization;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Tests.Support;
using GuidedDiffusion.Training;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Training;

/// <summary>One uninterrupted 30-step run on 8 generated classes, shared by the end-to-end tests.</summary>
public sealed class EightClassRun
{
    public EightClassRun()
    {
        TrainDir = TrainingFixtures.ImageFolder(8, 8, seed: 1);
        ValDir = TrainingFixtures.ImageFolder(8, 2, seed: 2);
        LogDir = TestImages.TempDir();
        Config = TrainingFixtures.ShortRun(TrainDir, ValDir, LogDir, iterations: 30);
        Result = new ClassifierTrainingJob(Config, TrainingFixtures.SmallClassifier(null), TrainingFixtures.Diffusion).Run();
    }

    public string TrainDir { get; }
    public string ValDir { get; }
    public string LogDir { get; }
    public TrainingConfig Config { get; }
    public TrainingResult Result { get; }

    public List<Dictionary<string, string>> Progress()
    {
        var lines = File.ReadAllLines(Path.Combine(LogDir, "progress.csv"));
        var header = lines[0].Split(',');
        return lines.Skip(1).Select(l => header.Zip(l.Split(',')).ToDictionary(p => p.First, p => p.Second)).ToList();
    }
}

public class ClassifierTrainingJobTests : IClassFixture<EightClassRun>
{
    private readonly EightClassRun _run;

    public ClassifierTrainingJobTests(EightClassRun run) => _run = run;

    [Fact]
    public void Run_WritesCheckpointsNamedByTheOriginalsRule()
    {
        // iterations 30, save_interval 10 → the original writes model000010, model000020 and model000029.
        var names = Directory.GetFiles(_run.LogDir, "*.pt").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(new[] { "model000010.pt", "model000020.pt", "model000029.pt", "opt000010.pt", "opt000020.pt", "opt000029.pt" }, names);
        Assert.Empty(Directory.GetFiles(_run.LogDir, "*.tmp"));
        var manifest = CheckpointManifest.Read(Path.Combine(_run.LogDir, "model000020.json"));
        Assert.Equal(21, manifest.CompletedSteps);
        Assert.Equal(8, manifest.Classifier!.NumClasses);
        Assert.Equal(Enumerable.Range(0, 8).Select(c => $"class{c}"), manifest.Classes);
        Assert.Equal(30, _run.Result.CompletedSteps);
    }

    [Fact]
    public void ProgressCsv_HasTheOriginalsKeys_AndLossFalls()
    {
        var expected = Reference.Json("train/summary.json").GetProperty("main_run").GetProperty("progress_csv_header")
            .EnumerateArray().Select(e => e.GetString()!).Order(StringComparer.Ordinal);
        var header = File.ReadLines(Path.Combine(_run.LogDir, "progress.csv")).First().Split(',');
        Assert.Equal(expected, header);
        var rows = _run.Progress();
        Assert.Equal(new[] { "0", "5", "10", "15", "20", "25" }, rows.Select(r => r["step"]));
        Assert.Equal("8", rows[0]["samples"]);
        Assert.Equal("208", rows[^1]["samples"]);
        double first = double.Parse(rows[0]["train_loss"], CultureInfo.InvariantCulture);
        double last = double.Parse(rows[^1]["train_loss"], CultureInfo.InvariantCulture);
        Assert.True(last < first - 0.15, $"train_loss should fall: {first} → {last}");
        Assert.Contains("training classifier model...", File.ReadAllText(Path.Combine(_run.LogDir, "log.txt")));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(_run.LogDir, "tb")));
    }

    [Fact]
    public void Resume_FromModel000020_EqualsTheUninterruptedRun()
    {
        var resumedDir = TestImages.TempDir();
        var config = _run.Config with { Checkpoints = _run.Config.Checkpoints with { LogDir = resumedDir, ResumeCheckpoint = Path.Combine(_run.LogDir, "model000020.pt") } };
        var result = new ClassifierTrainingJob(config, TrainingFixtures.SmallClassifier(null), TrainingFixtures.Diffusion).Run();
        Assert.Equal(30, result.CompletedSteps);
        // Only the final checkpoint is new (no save at the resumed run's first step), as in the original.
        Assert.Equal(new[] { "model000029.pt", "opt000029.pt" },
            Directory.GetFiles(resumedDir, "*.pt").Select(Path.GetFileName).Order(StringComparer.Ordinal));

        // Our own loader with strict key checking reads both, and the weights are identical.
        var expected = StateDictIO.Read(Path.Combine(_run.LogDir, "model000029.pt"));
        var actual = StateDictIO.Read(Path.Combine(resumedDir, "model000029.pt"));
        using var model = new EncoderUNet(TrainingFixtures.SmallClassifier(8));
        StateDictIO.Load(model, actual, "resumed");
        foreach (var (key, value) in expected)
            Assert.True(value.equal(actual[key]).all().item<bool>(), $"{key} differs after resume");
        // The resumed log continues at the right step with the right sample count.
        var lines = File.ReadAllLines(Path.Combine(resumedDir, "progress.csv"));
        var header = lines[0].Split(',');
        var row = lines.Skip(1).Single().Split(',');
        Assert.Equal("25", row[Array.IndexOf(header, "step")]);
        Assert.Equal("208", row[Array.IndexOf(header, "samples")]);
    }

    [Fact]
    public void ResumeAuto_PicksTheNewestCompleteCheckpoint()
    {
        var point = ResumePoint.Find("auto", _run.LogDir, TrainingFixtures.SmallClassifier(8), allowMismatch: false);
        Assert.NotNull(point);
        Assert.EndsWith("model000029.pt", point!.ModelPath);
        Assert.Equal(30, point.CompletedSteps);
    }

    [Fact]
    public void Resume_WithMissingOptimizerState_NamesTheFile()
    {
        var dir = TestImages.TempDir();
        File.Copy(Path.Combine(_run.LogDir, "model000010.pt"), Path.Combine(dir, "model000010.pt"));
        var e = Assert.Throws<CheckpointException>(() => ResumePoint.Find(Path.Combine(dir, "model000010.pt"), dir, TrainingFixtures.SmallClassifier(8), false));
        Assert.Contains("opt000010.pt", e.Message);
    }

    [Fact]
    public void Resume_WithADifferentArchitecture_IsAnErrorNamingTheDifference()
    {
        var wider = TrainingFixtures.SmallClassifier(8) with { Width = 64 };
        var e = Assert.Throws<ConfigurationException>(() => ResumePoint.Find(Path.Combine(_run.LogDir, "model000020.pt"), _run.LogDir, wider, false));
        Assert.Contains("classifier_width 64 (checkpoint: 32)", e.Message);
        Assert.NotNull(ResumePoint.Find(Path.Combine(_run.LogDir, "model000020.pt"), _run.LogDir, wider, allowMismatch: true));
    }

    [Fact]
    public void OriginalCheckpointWithoutSidecar_ResumesAfterIndexPlusOneUpdates()
    {
        var dir = TestImages.TempDir();
        foreach (var f in new[] { "model000010.pt", "opt000010.pt" })
            File.Copy(Path.Combine(_run.LogDir, f), Path.Combine(dir, f));
        var point = ResumePoint.Find(Path.Combine(dir, "model000010.pt"), dir, TrainingFixtures.SmallClassifier(8), false);
        Assert.Null(point!.Manifest);
        Assert.Equal(11, point.CompletedSteps);
    }
}

public class SmallTrainingRunTests
{
    [Fact]
    public void FourClasses_TrainWithoutTop5()
    {
        var train = TrainingFixtures.ImageFolder(4, 4, size: 32);
        var log = TestImages.TempDir();
        var config = TrainingFixtures.ShortRun(train, train, log, iterations: 3);
        config = config with { Checkpoints = config.Checkpoints with { LogInterval = 1 }, Validation = config.Validation with { EvalInterval = 1 } };
        var classifier = TrainingFixtures.SmallClassifier(null) with { ImageSize = 32, ChannelMult = [1, 2], AttentionResolutions = [16] };
        new ClassifierTrainingJob(config, classifier, TrainingFixtures.Diffusion).Run();
        var header = File.ReadLines(Path.Combine(log, "progress.csv")).First().Split(',');
        Assert.Contains("train_acc@1", header);
        Assert.Contains("val_acc@1_q3", header);
        Assert.DoesNotContain(header, h => h.Contains("acc@5"));
    }

    [Fact]
    public void StopRequested_SavesACheckpointAfterTheCurrentStep()
    {
        var train = TrainingFixtures.ImageFolder(2, 4, size: 32);
        var log = TestImages.TempDir();
        var config = TrainingFixtures.ShortRun(train, "", log, iterations: 100);
        var classifier = TrainingFixtures.SmallClassifier(null) with { ImageSize = 32, ChannelMult = [1, 2], AttentionResolutions = [16] };
        using var stop = new CancellationTokenSource();
        stop.Cancel();
        var result = new ClassifierTrainingJob(config, classifier, TrainingFixtures.Diffusion).Run(stop.Token);
        Assert.True(result.Interrupted);
        Assert.Equal(1, result.CompletedSteps);
        Assert.True(File.Exists(Path.Combine(log, "model000000.pt")));
        Assert.True(File.Exists(Path.Combine(log, "opt000000.pt")));
        Assert.Equal(1, CheckpointManifest.Read(Path.Combine(log, "model000000.json")).CompletedSteps);
    }

    [Fact]
    public void Demo_RunsAFewSteps()
    {
        var log = TestImages.TempDir();
        var (training, classifier) = (DemoPreset.ClassifierTraining(new TrainingConfig()), DemoPreset.Classifier(new ClassifierConfig { NumClasses = null }));
        training = training with { Length = training.Length with { Iterations = 2 }, Checkpoints = training.Checkpoints with { LogDir = log }, Validation = training.Validation with { EvalTable = false } };
        var result = new ClassifierTrainingJob(training, classifier, TrainingFixtures.Diffusion).Run();
        Assert.Equal(2, result.CompletedSteps);
        var manifest = CheckpointManifest.Read(Path.Combine(log, "model000001.json"));
        Assert.Equal(10, manifest.Classifier!.NumClasses);
        Assert.Equal("T-shirt/top", manifest.Classes[0]);
    }

    [Fact]
    public void CleanClassifier_EndOfTrainingTable_HasOnlyTheCleanRow()
    {
        // --noised False: the classifier only ever sees t = 0, so the whole-validation table is that one row.
        var log = TestImages.TempDir();
        var (training, classifier) = (DemoPreset.ClassifierTraining(new TrainingConfig()), DemoPreset.Classifier(new ClassifierConfig { NumClasses = null }));
        training = training with { Objective = training.Objective with { Noised = false }, Length = training.Length with { Iterations = 1 }, Checkpoints = training.Checkpoints with { LogDir = log }, Validation = training.Validation with { EvalTable = true } };
        new ClassifierTrainingJob(training, classifier with { Width = 32, NumHeadChannels = 32 }, TrainingFixtures.Diffusion).Run();
        var lines = File.ReadAllLines(Path.Combine(log, "log.txt"));
        int title = Array.FindIndex(lines, l => l.StartsWith("accuracy on clean images", StringComparison.Ordinal));
        Assert.True(title >= 0, string.Join("\n", lines));
        Assert.StartsWith("     t", lines[title + 1]);
        Assert.StartsWith("     0", lines[title + 2]);
        Assert.StartsWith("(1000 images", lines[title + 3]);
    }
}
