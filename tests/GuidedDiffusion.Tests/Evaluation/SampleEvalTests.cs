using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Transforms;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Formats;
using GuidedDiffusion.Tests.Cli;
using GuidedDiffusion.Tests.Support;
using SkiaSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Evaluation;

/// <summary>
/// <c>sample-eval</c> and <see cref="SampleAgreement"/>: a trained judge (the colours classifier) scores a sample
/// file whose images are real validation images. Labelled truthfully the judge (40 training steps) agrees far above
/// chance (0.25); with every label shifted to another class it agrees far less; the fractions match its answers.
/// </summary>
[Collection(TrainedColoursCollection.Name)]
public sealed class SampleEvalTests(TrainedColoursFixture fixture)
{
    /// <summary>The validation images as uint8 NHWC and their true classes (the fixture's alphabetical order).</summary>
    private (byte[] Images, long[] Labels, RgbImage[] Decoded) ValidationSamples()
    {
        var files = Directory.GetFiles(fixture.ValDir, "*.png").OrderBy(f => f, StringComparer.Ordinal).ToArray();
        var decoded = files.Select(f => ImageDecoder.Decode(f)).ToArray();
        var labels = files.Select(f => (long)Array.IndexOf(TrainedColoursFixture.ColourNames, Path.GetFileName(f).Split('_')[0])).ToArray();
        Assert.DoesNotContain(-1L, labels);
        return (decoded.SelectMany(image => image.Pixels).ToArray(), labels, decoded);
    }

    /// <summary>A sample file as classifier-sample writes it: 32-pixel uint8 NHWC images and their requested classes.</summary>
    private static void WriteSamples(string path, byte[] images, long[] labels) =>
        NpzWriter.Write(path, NpzWriter.UInt8(images, labels.Length, 32, 32, 3), NpzWriter.Int64(labels, labels.Length));

    [Fact]
    public void Measure_AgreesWithTrueLabels_AndNotWithShiftedOnes_AndScalesPixelsLikeTheLoader()
    {
        var (images, labels, decoded) = ValidationSamples();
        using var judge = TrainedClassifier.Load(fixture.ModelPath, TrainedColoursFixture.TinyConfig, new(), flagsGiven: false);

        var truthful = SampleAgreement.Measure(judge.Model, images, labels, batchSize: 7);
        Assert.Equal(labels.Length, truthful.Samples);
        Assert.True(truthful.Top1 >= 0.6, $"the colours judge should label most clean validation images correctly, agree@1 = {truthful.Top1}");
        Assert.Equal(labels.Where((y, i) => truthful.Predicted[i] == y).Count() / (double)labels.Length, truthful.Top1, 12);
        Assert.Null(truthful.Top5); // four classes
        Assert.InRange(truthful.MeanProbability, 0.5, 1.0);
        Assert.All(truthful.PerClass, c => Assert.Equal(TrainedColoursFixture.ValPerClass, c.Count));

        var shifted = SampleAgreement.Measure(judge.Model, images, labels.Select(y => (y + 1) % 4).ToArray());
        Assert.Equal(truthful.Predicted, shifted.Predicted); // the judge's answers do not depend on the request
        Assert.True(shifted.Top1 <= 1 - truthful.Top1 + 1e-12, $"shifted labels: agree@1 = {shifted.Top1}");
        Assert.Equal(labels.Where((y, i) => truthful.Predicted[i] == (y + 1) % 4).Count() / (double)labels.Length, shifted.Top1, 12);

        // The same predictions as the loader's own [-1, 1] scaling fed through the model directly.
        using var scope = NewDisposeScope();
        var x = stack(decoded.Select(image => tensor(ToTensorLayout.NormalizeToChw(image)).reshape(3, 32, 32)).ToArray());
        var direct = judge.Logits(x, zeros(labels.Length, dtype: ScalarType.Int64)).argmax(1).data<long>().ToArray();
        Assert.Equal(direct.Select(v => (int)v), truthful.Predicted);
    }

    [Fact]
    public void Measure_RejectsMismatchedSizesAndUnknownClasses()
    {
        using var judge = TrainedClassifier.Load(fixture.ModelPath, TrainedColoursFixture.TinyConfig, new(), flagsGiven: false);
        var one = new byte[32 * 32 * 3];
        Assert.Contains("2 labels", Assert.Throws<ArgumentException>(() => SampleAgreement.Measure(judge.Model, one, new long[] { 0, 1 })).Message);
        Assert.Contains("class 4", Assert.Throws<ArgumentException>(() => SampleAgreement.Measure(judge.Model, one, new long[] { 4 })).Message);
    }

    [Fact]
    public void SampleEval_ReportsAgreementPerFile_WritesJsonAndClassGrid()
    {
        var (images, labels, _) = ValidationSamples();
        var dir = fixture.NewTempDir("sample-eval");
        string truthful = Path.Combine(dir, "truthful.npz"), shifted = Path.Combine(dir, "shifted.npz"), json = Path.Combine(dir, "result.json");
        WriteSamples(truthful, images, labels);
        WriteSamples(shifted, images, labels.Select(y => (y + 1) % 4).ToArray());

        var report = new SampleAgreementJob(new SampleAgreementOptions
        {
            Judge = new ClassifierSource { Path = fixture.ModelPath },
            Grid = true,
            GridColumns = 5,
            JsonPath = json,
            Files = [truthful, shifted],
        }).Run();
        Assert.Contains("agree@1", SampleAgreement.FormatTable(report.Agreements));

        using var document = JsonDocument.Parse(File.ReadAllText(json));
        var rows = document.RootElement.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(2, rows.Length);
        using (var judge = TrainedClassifier.Load(fixture.ModelPath, TrainedColoursFixture.TinyConfig, new(), flagsGiven: false))
            Assert.Equal(SampleAgreement.Measure(judge.Model, images, labels).Top1, rows[0].GetProperty("agree_top1").GetDouble(), 12);
        Assert.True(rows[0].GetProperty("agree_top1").GetDouble() >= 0.6);
        Assert.True(rows[1].GetProperty("agree_top1").GetDouble() < rows[0].GetProperty("agree_top1").GetDouble());
        Assert.Equal(labels.Length, rows[0].GetProperty("predicted").GetArrayLength());

        // One row per requested class, five samples each: 4 rows × 5 columns of 32-pixel cells with 2-pixel gutters.
        using var grid = SKBitmap.Decode(Path.Combine(dir, "truthful_by_class.png"));
        Assert.Equal(5 * 32 + 6 * 2, grid.Width);
        Assert.Equal(4 * 32 + 5 * 2, grid.Height);
    }

    [Fact]
    public void SampleEval_ReportsWilsonIntervalsAndDiversity_AndRealImagesAsTheReference()
    {
        var (images, labels, _) = ValidationSamples();
        var dir = fixture.NewTempDir("sample-eval-reference");
        string truthful = Path.Combine(dir, "truthful.npz"), copies = Path.Combine(dir, "copies.npz"), json = Path.Combine(dir, "result.json");
        WriteSamples(truthful, images, labels);
        // Every sample of a class is the same image (the class's first): a collapsed sampler, diversity 0.
        int imageBytes = 32 * 32 * 3;
        var first = labels.Select(y => Array.IndexOf(labels, y)).ToArray();
        var copied = first.SelectMany(i => images.AsSpan(i * imageBytes, imageBytes).ToArray()).ToArray();
        WriteSamples(copies, copied, labels);

        var options = new SampleAgreementOptions
        {
            Judge = new ClassifierSource { Path = fixture.ModelPath },
            JsonPath = json,
            Files = [truthful, copies],
            ReferenceDir = fixture.ValDir,
            NumWorkers = 0,
        };
        var report = new SampleAgreementJob(options).Run();
        var (_, measured) = report.Agreements[0];
        int hits = (int)Math.Round(measured.Top1 * measured.Samples);
        Assert.Equal(WilsonInterval.Of(hits, measured.Samples), measured.Top1Interval);
        Assert.True(measured.Diversity > 0, $"distinct images of a class have distinct features, diversity = {measured.Diversity}");
        Assert.InRange(report.Agreements[1].Agreement.Diversity, 0.0, 1e-5);

        // The reference row judges the same validation images, read by the loader from the folder, against their true
        // classes: the same accuracy and the same diversity as the truthful sample file.
        var (referenceName, reference) = report.ReferenceAgreement!.Value;
        Assert.Contains(fixture.ValDir, referenceName);
        Assert.Equal(labels.Length, reference.Samples);
        Assert.Equal(measured.Top1, reference.Top1, 12);
        Assert.Equal(measured.Diversity, reference.Diversity, 1e-4 * measured.Diversity);
        var table = SampleAgreement.FormatTable(report.Agreements, report.ReferenceAgreement);
        Assert.Contains("95% CI", table);
        Assert.Contains("diversity", table);
        Assert.Contains(referenceName, table.Split('\n')[^2]); // last row, below the rule

        using var document = JsonDocument.Parse(File.ReadAllText(json));
        var row = document.RootElement.GetProperty("results")[0];
        var ci = row.GetProperty("agree_top1_ci95").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.Equal(new[] { measured.Top1Interval.Lower, measured.Top1Interval.Upper }, ci);
        Assert.Equal(JsonValueKind.Null, row.GetProperty("agree_top5_ci95").ValueKind); // four classes: no top-5
        Assert.Equal(measured.Diversity, row.GetProperty("diversity").GetDouble());
        Assert.True(row.GetProperty("per_class")[0].GetProperty("diversity").GetDouble() > 0);
        Assert.Equal(reference.Top1, document.RootElement.GetProperty("reference").GetProperty("agree_top1").GetDouble());

        // Without a folder the bundled Fashion-MNIST split is the default, which means nothing to a 4-class judge.
        var noFolder = new SampleAgreementJob(options with { ReferenceDir = "", JsonPath = "" }).Run();
        Assert.Null(noFolder.ReferenceAgreement);
        Assert.Contains("4 classes", noFolder.ReferenceNote);
        Assert.Null(new SampleAgreementJob(options with { Reference = false, JsonPath = "" }).Run().ReferenceAgreement);
    }

    [Fact]
    public void Pipeline_EmaCheckpoint_ClassifierSample_SampleEval_NeedsNoArchitectureFlags()
    {
        // The demo's chain in miniature, through the commands' binding: the sidecars carry every architecture and process
        // setting, the diffusion model's as image-train saves it (an EMA file described by its save's sidecar).
        var dir = fixture.NewTempDir("pipeline");
        var ema = TestCheckpoints.DiffusionModelAsEma(Path.Combine(dir, "model"), Training.TinyImageRun.Model with { ClassCond = false },
            new DiffusionConfig { LearnSigma = true });

        var sample = CliRunner.InProcess("classifier-sample", "--model_path", ema, "--classifier_path", fixture.ModelPath, "--classifier_scale", "3",
            "--num_samples", "3", "--batch_size", "3", "--timestep_respacing", "4", "--out_dir", Path.Combine(dir, "samples"));
        Assert.True(sample.ExitCode == 0, sample.Error);
        string npz = Path.Combine(dir, "samples", "samples_3x32x32x3.npz");
        Assert.All(NpzReader.ToInt64(NpzReader.Read(npz)["arr_1"]), y => Assert.InRange(y, 0, 3)); // the judge's 4 classes

        string json = Path.Combine(dir, "judged.json");
        var judged = CliRunner.InProcess("sample-eval", "--model_path", fixture.ModelPath, "--reference", "False", "--json", json, npz);
        Assert.True(judged.ExitCode == 0, judged.Error);
        using var report = JsonDocument.Parse(File.ReadAllText(json));
        var result = Assert.Single(report.RootElement.GetProperty("results").EnumerateArray());
        Assert.Equal(npz, result.GetProperty("file").GetString());
        Assert.Equal(3, result.GetProperty("samples").GetInt32());
        Assert.Equal(2, result.GetProperty("agree_top1_ci95").GetArrayLength());
    }

    [Fact]
    public void SampleEval_NamesTheFileWhenItIsNotASampleFile()
    {
        var dir = fixture.NewTempDir("sample-eval-bad");
        var notNpz = Path.Combine(dir, "notes.npz");
        File.WriteAllText(notNpz, "not a zip");
        var result = CliRunner.InProcess("sample-eval", "--model_path", fixture.ModelPath, notNpz);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(notNpz, result.Error);

        var wrongSize = Path.Combine(dir, "small.npz");
        NpzWriter.Write(wrongSize, NpzWriter.UInt8(new byte[16 * 16 * 3], 1, 16, 16, 3), NpzWriter.Int64(new long[] { 0 }, 1));
        result = CliRunner.InProcess("sample-eval", "--model_path", fixture.ModelPath, wrongSize);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("16-pixel", result.Error);
    }
}
