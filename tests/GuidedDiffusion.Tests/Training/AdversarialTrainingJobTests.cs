using GuidedDiffusion.Checkpoints;
using System.Globalization;
using System.Text.Json.Nodes;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Training;
using GuidedDiffusion.Adversarial;

namespace GuidedDiffusion.Tests.Training;

/// <summary>
/// One uninterrupted 4-step adversarial run with every trainer feature that touches a step: noised batches,
/// microbatches, EMA, validation each step and checkpoints at steps 2 and 3.
/// </summary>
public sealed class AdversarialRun
{
    public AdversarialRun()
    {
        TrainDir = TrainingFixtures.ImageFolder(4, 4, size: 32, seed: 1);
        var valDir = TrainingFixtures.ImageFolder(4, 2, size: 32, seed: 2);
        LogDir = TestImages.TempDir();
        Config = TrainingFixtures.ShortRun(TrainDir, valDir, LogDir, iterations: 4);
        Config = Config with
        {
            Data = Config.Data with { BatchSize = 4 },
            Objective = Config.Objective with { Adversarial = Attack },
            Optimizer = Config.Optimizer with { Microbatch = 2, EmaRate = "0.99" },
            Checkpoints = Config.Checkpoints with { SaveInterval = 2, LogInterval = 1 },
            Validation = Config.Validation with { EvalInterval = 1 },
        };
        Result = new ClassifierTrainingJob(Config, Classifier, TrainingFixtures.Diffusion).Run();
    }

    public static L2PgdOptions Attack { get; } = new() { Eps = 0.5, Steps = 3 };

    public static ClassifierConfig Classifier { get; } =
        TrainingFixtures.SmallClassifier(null) with { ImageSize = 32, ChannelMult = [1, 2], AttentionResolutions = [16] };

    public string TrainDir { get; }
    public string LogDir { get; }
    public TrainingConfig Config { get; }
    public TrainingResult Result { get; }
}

public class AdversarialTrainingJobTests(AdversarialRun run) : IClassFixture<AdversarialRun>
{
    [Fact]
    public void Sidecar_RecordsTheAttackSettings()
    {
        var sidecar = Path.Combine(run.LogDir, "model000003.json");
        Assert.Equal(AdversarialRun.Attack, TrainingConfig.RecordedIn(CheckpointManifest.Read(sidecar))!.Objective.Adversarial);
        var recorded = JsonNode.Parse(File.ReadAllText(sidecar))!["training"]!["adversarial"]!;
        Assert.Equal(0.5, recorded["eps"]!.GetValue<double>());
        Assert.Equal(3, recorded["steps"]!.GetValue<int>());
        Assert.Equal("constant", recorded["eps_schedule"]!.GetValue<string>());
    }

    [Fact]
    public void ProgressCsv_HasRobustValidationPerQuartile_AndThePerturbationSize()
    {
        var lines = File.ReadAllLines(Path.Combine(run.LogDir, "progress.csv"));
        var header = lines[0].Split(',');
        foreach (var key in MetricKeys.WithQuartiles("val_robust_acc@1").Append("train_attack_l2").Append("val_robust_attack_l2"))
            Assert.Contains(key, header);
        Assert.Equal(header.Order(StringComparer.Ordinal), header);
        var rows = lines.Skip(1).Select(l => header.Zip(l.Split(',')).ToDictionary(p => p.First, p => p.Second)).ToList();
        Assert.Equal(4, rows.Count);
        foreach (var row in rows)
        {
            double Value(string key) => double.Parse(row[key], CultureInfo.InvariantCulture);
            // The same noised validation batch, clean then attacked: the attack can only turn right into wrong.
            Assert.True(Value("val_robust_acc@1") <= Value("val_acc@1"), $"step {row["step"]}");
            // Empty while no attack has succeeded (the head starts at zero, so the first steps' input gradients are tiny).
            foreach (var key in new[] { "train_attack_l2", "val_robust_attack_l2" })
                if (row[key].Length > 0) Assert.InRange(Value(key), 1e-6, AdversarialRun.Attack.Eps + 1e-5);
        }
    }

    [Fact]
    public void Resume_WithEmaAndMicrobatches_EqualsTheUninterruptedRun()
    {
        var resumedDir = TestImages.TempDir();
        var config = run.Config with { Checkpoints = run.Config.Checkpoints with { LogDir = resumedDir, ResumeCheckpoint = Path.Combine(run.LogDir, "model000002.pt") } };
        var result = new ClassifierTrainingJob(config, AdversarialRun.Classifier, TrainingFixtures.Diffusion).Run();
        Assert.Equal(4, result.CompletedSteps);
        foreach (var file in new[] { "model000003.pt", "ema_0.99_000003.pt" })
        {
            var expected = StateDictIO.Read(Path.Combine(run.LogDir, file));
            var actual = StateDictIO.Read(Path.Combine(resumedDir, file));
            Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
            foreach (var (key, value) in expected)
                Assert.True(value.equal(actual[key]).all().item<bool>(), $"{file}: {key} differs after resume");
        }
    }

    [Fact]
    public void ResumingWithOtherAttackSettings_SaysSo()
    {
        var resumedDir = TestImages.TempDir();
        var console = new StringWriter();
        var config = run.Config with { Objective = run.Config.Objective with { Adversarial = null }, Checkpoints = run.Config.Checkpoints with { LogDir = resumedDir, ResumeCheckpoint = Path.Combine(run.LogDir, "model000002.pt") } };
        new ClassifierTrainingJob(config, AdversarialRun.Classifier, TrainingFixtures.Diffusion, new RunContext { Output = console }).Run();
        Assert.Contains("was trained on attacks (L2 PGD: eps 0.5, 3 steps of 0.0833, constant radius); this run continues without attacks.",
            console.ToString());
    }

    [Fact]
    public void SidecarWithoutAttackSettings_StillLoadsAndResumes()
    {
        // A sidecar written before adversarial training existed: the same file without training.adversarial.
        var dir = TestImages.TempDir();
        foreach (var file in new[] { "model000002.pt", "opt000002.pt" })
            File.Copy(Path.Combine(run.LogDir, file), Path.Combine(dir, file));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(run.LogDir, "model000002.json")))!;
        Assert.True(json["training"]!.AsObject().Remove("adversarial"));
        File.WriteAllText(Path.Combine(dir, "model000002.json"), json.ToJsonString());

        var manifest = CheckpointManifest.Read(Path.Combine(dir, "model000002.json"));
        Assert.Null(TrainingConfig.RecordedIn(manifest)!.Objective.Adversarial);
        using var classifier = TrainedClassifier.Load(Path.Combine(dir, "model000002.pt"), new ClassifierConfig(), new(), flagsGiven: false);
        Assert.Equal(4, classifier.Config.NumClasses);
        var point = ResumePoint.Find(Path.Combine(dir, "model000002.pt"), dir, AdversarialRun.Classifier with { NumClasses = 4 }, allowMismatch: false);
        Assert.Equal(3, point!.CompletedSteps);
    }
}
