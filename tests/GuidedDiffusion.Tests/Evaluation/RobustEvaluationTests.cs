using GuidedDiffusion.Checkpoints;
using System.Globalization;
using System.Text.Json.Nodes;
using GuidedDiffusion.Cli;
using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Models;
using GuidedDiffusion.Training;
using GuidedDiffusion.Adversarial;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Evaluation;

/// <summary>The L2 PGD attack against a trained noisy classifier, and robust accuracy per noise level in classifier-eval.</summary>
[Collection(TrainedColoursCollection.Name)]
public sealed class RobustEvaluationTests(TrainedColoursFixture fixture, ITestOutputHelper output)
{
    private static readonly L2PgdOptions ReferenceAttack = new();

    private TrainedClassifier Load() => TrainedClassifier.Load(fixture.ModelPath, new ClassifierConfig(), new DiffusionConfig(), flagsGiven: false);

    [Fact]
    public void Attack_StrictlyIncreasesTheLossOfATrainedClassifier()
    {
        using var scope = NewDisposeScope();
        using var classifier = Load();
        var source = new ImageFolderSource(fixture.ValDir, LabelRule.Prefix, new ClassMap(classifier.Classes));
        using var batch = DataLoader.EnumerateOnce(source, new DataOptions { ImageSize = 32, BatchSize = 24, NumWorkers = 0 }).First();
        var diffusion = classifier.Diffusion.Build();
        var attack = new L2PgdAttack(classifier.Model, ReferenceAttack, diffusion);
        int attacked = 0;
        foreach (var step in new[] { 50, 300, 600 })
        {
            var t = full(24, step, dtype: ScalarType.Int64);
            var xt = diffusion.QSample(batch.Images, t, randn(batch.Images.shape, generator: new Generator((ulong)step)));
            var result = attack.Run(xt, batch.Labels, t);
            double[] Losses(Tensor x)
            {
                using var noGrad = no_grad();
                return nn.functional.cross_entropy(classifier.Model.forward(x, t), batch.Labels, reduction: nn.Reduction.None)
                    .to_type(ScalarType.Float64).data<double>().ToArray();
            }
            var before = Losses(xt);
            var after = Losses(result.Adversarial);
            var correct = result.InitiallyCorrect!.data<bool>().ToArray();
            output.WriteLine($"t = {step}: mean loss {before.Average():F4} → {after.Average():F4}, {correct.Count(c => c)} of 24 attacked");
            for (int i = 0; i < 24; i++)
            {
                if (correct[i])
                    Assert.True(after[i] > before[i], $"t = {step}, sample {i}: loss {before[i]} → {after[i]}");
                else
                    Assert.Equal(before[i], after[i]); // misclassified from the start: not attacked
            }
            Assert.True(after.Average() > before.Average());
            attacked += correct.Count(c => c);
        }
        Assert.True(attacked >= 24, $"only {attacked} correctly classified samples to attack");
    }

    [Fact]
    public void Evaluator_WithAnAttack_ReportsRobustAccuracyNextToTheCleanOne()
    {
        using var classifier = Load();
        var source = new ImageFolderSource(fixture.ValDir, LabelRule.Prefix, new ClassMap(classifier.Classes));
        var options = new EvaluationOptions { Timesteps = [50, 800], NumWorkers = 0, BatchSize = 12, ComputeGradNorm = false };
        // Solid colours are hard to fool: radius 5 (≈ 0.09 per pixel) flips some at t = 50 and all at t = 800 (measured).
        var strong = ReferenceAttack with { Eps = 5 };
        var report = NoiseLevelEvaluator.Run(classifier, source, options with { Attack = strong });
        var clean = NoiseLevelEvaluator.Run(classifier, source, options);
        output.WriteLine(report.FormatTable());
        Assert.Equal(strong, report.Attack);
        for (int i = 0; i < report.Levels.Count; i++)
        {
            var level = report.Levels[i];
            // The clean numbers do not change when an attack is added.
            Assert.Equal(clean.Levels[i].Acc1, level.Acc1);
            Assert.Null(clean.Levels[i].RobustAcc1);
            Assert.True(level.RobustAcc1 <= level.Acc1, $"t = {level.Timestep}: robust {level.RobustAcc1} > clean {level.Acc1}");
            if (level.AttackL2 is { } l2) Assert.InRange(l2, 1e-6, strong.Eps + 1e-5);
        }
        Assert.Contains(report.Levels, l => l.RobustAcc1 < l.Acc1);
    }

    [Fact]
    public void ClassifierEval_WithAttackEps_WritesRobustColumnsToCsvJsonAndTable()
    {
        var outDir = fixture.NewTempDir("robust-eval");
        int code = Program.BuildRoot().Parse(["classifier-eval", "--model_path", fixture.ModelPath, "--data_dir", fixture.ValDir,
            "--timesteps", "50,500", "--grad_norm", "False", "--batch_size", "12", "--num_workers", "0", "--log_dir", outDir,
            "--attack_eps", "2", "--attack_steps", "3"]).Invoke();
        Assert.Equal(0, code);

        var lines = File.ReadAllLines(Path.Combine(outDir, EvaluationFiles.CsvName));
        var header = lines[0].Split(',');
        var fixedColumns = EvaluationFiles.CsvColumns.Concat(EvaluationFiles.RobustCsvColumns).ToArray();
        Assert.Equal(fixedColumns, header.Take(fixedColumns.Length));
        Assert.Equal(TrainedColoursFixture.ColourNames.Select(c => $"acc@1[{c}]"), header.Skip(fixedColumns.Length));
        foreach (var row in lines.Skip(1).Select(l => l.Split(',')))
        {
            double acc = double.Parse(row[Array.IndexOf(header, "acc@1")], CultureInfo.InvariantCulture);
            double robust = double.Parse(row[Array.IndexOf(header, "robust_acc@1")], CultureInfo.InvariantCulture);
            Assert.InRange(robust, 0, acc);
        }

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, EvaluationFiles.JsonName)))!;
        Assert.Equal(2.0, json["attack"]!["eps"]!.GetValue<double>());
        Assert.Equal(3, json["attack"]!["steps"]!.GetValue<int>());
        var report = EvaluationFiles.ReadJson(Path.Combine(outDir, EvaluationFiles.JsonName));
        Assert.All(report.Levels, l => Assert.NotNull(l.RobustAcc1));

        var table = report.FormatTable().Split('\n');
        Assert.Matches(@"^\s+t\s+loss\s+acc@1\s+rob@1\s+acc@5\s+ECE\s+grad norm\s+attack L2$", table[0]);
        Assert.Contains(table, l => l.StartsWith("(rob@1: acc@1 under L2 PGD: eps 2, 3 steps of 0.3333, constant radius", StringComparison.Ordinal));
    }
}
