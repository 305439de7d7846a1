using System.Globalization;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Cli;
using GuidedDiffusion.Data;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Cli;

namespace GuidedDiffusion.Tests.Evaluation;

[Collection(TrainedColoursCollection.Name)]
public sealed class EvaluationCliTests(TrainedColoursFixture fixture)
{
    private static int Cli(params string[] args) => Program.BuildRoot().Parse(args).Invoke();

    [Fact]
    public void ClassifierEval_WritesCsvJsonAndPngWithEveryBin()
    {
        var outDir = fixture.NewTempDir("eval");
        int code = Cli("classifier-eval", "--model_path", fixture.ModelPath, "--data_dir", fixture.ValDir, "--num_t_bins", "4",
            "--noise-repeats", "1", "--batch_size", "12", "--num_workers", "0", "--log_dir", outDir);
        Assert.Equal(0, code);

        var lines = File.ReadAllLines(Path.Combine(outDir, EvaluationFiles.CsvName));
        var header = lines[0].Split(',');
        Assert.Equal(EvaluationFiles.CsvColumns, header.Take(EvaluationFiles.CsvColumns.Count));
        Assert.Equal(TrainedColoursFixture.ColourNames.Select(c => $"acc@1[{c}]"), header.Skip(EvaluationFiles.CsvColumns.Count));
        Assert.Equal(new[] { 125, 375, 625, 875 }, lines.Skip(1).Select(l => int.Parse(l.Split(',')[0], CultureInfo.InvariantCulture)));
        foreach (var row in lines.Skip(1).Select(l => l.Split(',')))
        {
            Assert.Equal(header.Length, row.Length);
            Assert.Equal((4 * TrainedColoursFixture.ValPerClass).ToString(CultureInfo.InvariantCulture), row[1]);
            Assert.Equal("", row[4]); // acc@5 absent with four classes
            foreach (var i in new[] { 2, 3, 5, 6 })
                Assert.True(double.TryParse(row[i], NumberStyles.Float, CultureInfo.InvariantCulture, out _), $"{header[i]} = '{row[i]}'");
            double gradNorm = double.Parse(row[6], CultureInfo.InvariantCulture);
            Assert.True(gradNorm > 0 && double.IsFinite(gradNorm), $"grad_norm = {gradNorm}");
        }

        var report = EvaluationFiles.ReadJson(Path.Combine(outDir, EvaluationFiles.JsonName));
        Assert.Equal(new[] { 125, 375, 625, 875 }, report.Levels.Select(l => l.Timestep));
        Assert.Equal(Path.GetFullPath(fixture.ModelPath), report.ModelPath);
        Assert.Equal(1000, report.NumTimesteps);
        Assert.Equal(4 * TrainedColoursFixture.ValPerClass, report.Images);
        Assert.All(report.Levels, l => Assert.Equal(4, l.PerClassAccuracy.Count));

        Assert.Equal((Plots.Width, Plots.Height), PngHeader.Size(Path.Combine(outDir, EvaluationFiles.PlotName)));
    }

    [Fact]
    public void ClassifierEval_DefaultsToTheCheckpointFolder_AndExplicitTimesteps()
    {
        // A copy of the checkpoint in its own folder, so the default output location can be checked.
        var dir = fixture.NewTempDir("ckpt");
        var model = Path.Combine(dir, Path.GetFileName(fixture.ModelPath));
        File.Copy(fixture.ModelPath, model);
        File.Copy(CheckpointManifest.PathFor(fixture.ModelPath), CheckpointManifest.PathFor(model));
        Assert.Equal(0, Cli("classifier-eval", "--model_path", model, "--data_dir", fixture.ValDir, "--timesteps", "0,999",
            "--grad_norm", "False", "--num_workers", "0"));
        var report = EvaluationFiles.ReadJson(Path.Combine(dir, EvaluationFiles.JsonName));
        Assert.Equal(new[] { 0, 999 }, report.Levels.Select(l => l.Timestep));
        Assert.All(report.Levels, l => Assert.Null(l.GradNorm));
        Assert.True(File.Exists(Path.Combine(dir, EvaluationFiles.PlotName)));
    }

    [Fact]
    public void ClassifierEval_MissingCheckpoint_IsAClearError()
    {
        var missing = Path.Combine(fixture.Root, "nope", "model000001.pt");
        var run = CliRunner.InProcess("classifier-eval", "--model_path", missing, "--data_dir", fixture.ValDir);
        Assert.Equal(2, run.ExitCode);
        Assert.Equal($"error: --model_path '{missing}' does not exist.", run.Error.Trim());
        var e = Assert.Throws<CheckpointException>(() =>
            TrainedClassifier.Load(missing, new ClassifierConfig(), new DiffusionConfig(), flagsGiven: false));
        Assert.Contains(missing, e.Message);
        Assert.Equal(2, Cli("classifier-eval")); // --model_path is required
    }

    [Fact]
    public void ClassifierEval_OriginalPtWithWrongArchitectureFlags_IsAClearError()
    {
        // Without its JSON sidecar our checkpoint is an "original" .pt: the architecture must come from the flags.
        var dir = fixture.NewTempDir("original");
        var bare = Path.Combine(dir, "model.pt");
        File.Copy(fixture.ModelPath, bare);
        var run = CliRunner.InProcess("classifier-eval", "--model_path", bare, "--data_dir", fixture.ValDir, "--image_size", "32", "--classifier_width", "64");
        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith($"error: The state dict in '{bare}' does not fit the model", run.Error);
        Assert.Contains("time_embed.0.weight: model [256, 64], checkpoint [128, 32]", run.Error);
        Assert.Contains("Check that the architecture flags", run.Error);
        var e = Assert.Throws<StateDictMismatchException>(() =>
            TrainedClassifier.Load(bare, TrainedColoursFixture.TinyConfig with { Width = 64 }, new DiffusionConfig(), flagsGiven: true));
        Assert.Contains(bare, e.Message);
        Assert.NotEmpty(e.ShapeMismatches);

        // With the right flags the same file evaluates (the class count read from its output layer); class names are then the folder's own, sorted.
        Assert.Equal(0, Cli("classifier-eval", "--model_path", bare, "--data_dir", fixture.ValDir, "--timesteps", "50",
            "--image_size", "32", "--channel_mult", "1,2", "--classifier_width", "32", "--classifier_depth", "1",
            "--classifier_attention_resolutions", "16", "--num_head_channels", "32", "--num_workers", "0", "--grad_norm", "false"));
        Assert.True(File.Exists(Path.Combine(dir, EvaluationFiles.CsvName)));
    }

    [Fact]
    public void ClassifierEval_EmptyDataFolder_IsAClearError()
    {
        var empty = fixture.NewTempDir("empty");
        var run = CliRunner.InProcess("classifier-eval", "--model_path", fixture.ModelPath, "--data_dir", empty, "--log_dir", empty);
        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith($"error: Data folder '{Path.GetFullPath(empty)}' is empty", run.Error);
        var e = Assert.Throws<DatasetException>(() => new GuidedDiffusion.Data.Sources.ImageFolderSource(empty));
        Assert.Contains(Path.GetFullPath(empty), e.Message);
        Assert.False(File.Exists(Path.Combine(empty, EvaluationFiles.CsvName)));
    }

    [Fact]
    public void Plot_WritesTrainingCurvesOfTheRun()
    {
        var run = fixture.NewTempDir("plot");
        File.Copy(Path.Combine(fixture.RunDir, "progress.csv"), Path.Combine(run, "progress.csv"));
        Assert.Equal(0, Cli("plot", "--log_dir", run));
        Assert.Equal((Plots.Width, Plots.Height), PngHeader.Size(Path.Combine(run, Plots.CurvesName)));
        Assert.Equal((Plots.Width, Plots.Height), PngHeader.Size(Path.Combine(run, Plots.QuartileCurvesName)));

        var log = ProgressLog.Read(run);
        Assert.Equal(4, log.Rows); // 40 steps logged every 10
        Assert.True(log.Has("val_loss"));
    }

    [Fact]
    public void Plot_MissingOrEmptyProgressCsv_IsAClearError()
    {
        var dir = fixture.NewTempDir("noprogress");
        var run = CliRunner.InProcess("plot", "--log_dir", dir);
        Assert.Equal(2, run.ExitCode);
        Assert.Equal($"error: '{dir}' has no progress.csv: point --log_dir at a run folder written by classifier-train.", run.Error.Trim());
        Assert.Contains("has no progress.csv", Assert.Throws<FileNotFoundException>(() => ProgressLog.Read(dir)).Message);

        File.WriteAllText(Path.Combine(dir, "progress.csv"), "");
        Assert.Equal(2, Cli("plot", "--log_dir", dir));
        Assert.Contains("is empty", Assert.Throws<ConfigurationException>(() => ProgressLog.Read(dir)).Message);

        File.WriteAllText(Path.Combine(dir, "progress.csv"), "samples,step,train_loss\n");
        Assert.Contains("no rows", Assert.Throws<ConfigurationException>(() => ProgressLog.Read(dir)).Message);
        Assert.False(File.Exists(Path.Combine(dir, Plots.CurvesName)));

        Assert.Equal(2, Cli("plot", "--log_dir", Path.Combine(dir, "missing")));
        Assert.Equal(2, Cli("plot"));
    }
}
