using System.Text.Json;
using System.Text.Json.Serialization;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Formats;
using static TorchSharp.torch;

namespace GuidedDiffusion.Evaluation;

/// <summary>The settings of <see cref="SampleAgreementJob"/>.</summary>
public sealed record SampleAgreementOptions
{
    /// <summary>The judging classifier; its sidecar, if any, supplies the architecture. Its path is required.</summary>
    public ClassifierSource Judge { get; init; } = new();
    /// <summary>Timestep given to the judge (0 for a clean classifier).</summary>
    public int Timestep { get; init; }
    /// <summary>Images per forward pass. Default 100.</summary>
    public int BatchSize { get; init; } = 100;
    /// <summary>Also write, per sample file, <c>FILE_by_class.png</c>: one row per requested class.</summary>
    public bool Grid { get; init; }
    /// <summary>Samples per class row of the grids. Default 10.</summary>
    public int GridColumns { get; init; } = 10;
    /// <summary>Also write the report (<see cref="SampleAgreementReport"/>) to this JSON file; empty: none.</summary>
    public string JsonPath { get; init; } = "";
    /// <summary><c>samples_NxHxWx3.npz</c> files written by guided sampling (arr_0 images, arr_1 requested classes).</summary>
    public IReadOnlyList<string> Files { get; init; } = [];
    /// <summary>
    /// Also judge real images, grouped by their true class, as the reference row: the judge's accuracy on them and
    /// the diversity of real images of one class. Default true.
    /// </summary>
    public bool Reference { get; init; } = true;
    /// <summary>
    /// The real images' folder (labels from the file names, like the training data); empty: the bundled
    /// Fashion-MNIST demo's validation split, used only when the judge has its 10 classes.
    /// </summary>
    public string ReferenceDir { get; init; } = "";
    /// <summary>At most this many real images (the first ones). Default 1000, the demo's validation split.</summary>
    public int ReferenceSamples { get; init; } = FashionMnistDemo.ValidationCount;
    /// <summary>Image-decoding threads for the real images (0: on the caller's thread). Default: one per processor.</summary>
    public int NumWorkers { get; init; } = Environment.ProcessorCount;
}

/// <summary>One requested class of a sample file (the JSON schema of the report).</summary>
/// <param name="Class">The label.</param>
/// <param name="Name">The judge's name for it.</param>
/// <param name="Samples">Samples that requested it.</param>
/// <param name="AgreeTop1">Fraction the judge labelled as it (null without samples).</param>
public sealed record ClassAgreement(
    [property: JsonPropertyName("class")] int Class,
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("samples")] int Samples,
    [property: JsonPropertyName("agree_top1")] double? AgreeTop1)
{
    /// <summary>Mean pairwise distance of the judge's penultimate features among its samples (null below two).</summary>
    [JsonPropertyName("diversity")]
    public double? Diversity { get; init; }
}

/// <summary>The judge's verdict on one sample file (the JSON schema of the report).</summary>
/// <param name="File">The sample file.</param>
/// <param name="Samples">Images in it.</param>
/// <param name="AgreeTop1">Fraction labelled as the requested class.</param>
/// <param name="AgreeTop5">Fraction with the requested class among the top 5 (null with fewer than 5 classes).</param>
/// <param name="MeanProbability">Mean probability the judge gives the requested class.</param>
/// <param name="PerClass">The same per requested class.</param>
/// <param name="Predicted">The judge's label of each sample.</param>
public sealed record FileAgreement(
    [property: JsonPropertyName("file")] string File,
    [property: JsonPropertyName("samples")] int Samples,
    [property: JsonPropertyName("agree_top1")] double AgreeTop1,
    [property: JsonPropertyName("agree_top5")] double? AgreeTop5,
    [property: JsonPropertyName("mean_probability")] double MeanProbability,
    // The long lists go after the summary figures declared in the body.
    [property: JsonPropertyName("per_class"), JsonPropertyOrder(1)] IReadOnlyList<ClassAgreement> PerClass,
    [property: JsonPropertyName("predicted"), JsonPropertyOrder(1)] IReadOnlyList<int> Predicted)
{
    /// <summary>The 95 % Wilson score interval of <see cref="AgreeTop1"/>: [lower, upper].</summary>
    [JsonPropertyName("agree_top1_ci95")]
    public IReadOnlyList<double> AgreeTop1Ci95 { get; init; } = [];

    /// <summary>The 95 % Wilson score interval of <see cref="AgreeTop5"/> (null when that is).</summary>
    [JsonPropertyName("agree_top5_ci95")]
    public IReadOnlyList<double>? AgreeTop5Ci95 { get; init; }

    /// <summary>Mean over requested classes of the mean pairwise distance of the judge's penultimate features
    /// among their samples (null when no class has two samples).</summary>
    [JsonPropertyName("diversity")]
    public double? Diversity { get; init; }

    /// <summary>The record of one measurement; <paramref name="classes"/> names the judge's labels.</summary>
    public static FileAgreement From(string file, SampleAgreement a, IReadOnlyList<string> classes) =>
        new(file, a.Samples, a.Top1, a.Top5, a.MeanProbability,
            a.PerClass.Select((p, c) => new ClassAgreement(c, classes[c], p.Count, p.Count > 0 ? p.Top1 : null)
            {
                Diversity = c < a.PerClassDiversity.Count ? NullIfNaN(a.PerClassDiversity[c]) : null,
            }).ToArray(),
            a.Predicted)
        {
            AgreeTop1Ci95 = [a.Top1Interval.Lower, a.Top1Interval.Upper],
            AgreeTop5Ci95 = a.Top5Interval is { } i5 ? [i5.Lower, i5.Upper] : null,
            Diversity = NullIfNaN(a.Diversity),
        };

    private static double? NullIfNaN(double value) => double.IsNaN(value) ? null : value;
}

/// <summary>What <see cref="SampleAgreementJob"/> measured (the JSON file's schema).</summary>
/// <param name="Judge">The judging checkpoint.</param>
/// <param name="Timestep">The timestep it was given.</param>
/// <param name="Results">One entry per sample file.</param>
public sealed record SampleAgreementReport(
    [property: JsonPropertyName("judge")] string Judge,
    [property: JsonPropertyName("timestep")] int Timestep,
    [property: JsonPropertyName("results")] IReadOnlyList<FileAgreement> Results)
{
    /// <summary>
    /// The real images judged against their true classes (<see cref="FileAgreement.File"/> describes them):
    /// agree@1 is the judge's accuracy, the diversity that of real images of one class. Null when not measured.
    /// </summary>
    [JsonPropertyName("reference")]
    public FileAgreement? Reference { get; init; }

    /// <summary>The measurement behind <see cref="Reference"/>, as <see cref="SampleAgreement.FormatTable"/> takes it.</summary>
    [JsonIgnore]
    public (string Name, SampleAgreement Agreement)? ReferenceAgreement { get; init; }

    /// <summary>Why no reference was measured although one was asked for (empty otherwise).</summary>
    [JsonIgnore]
    public string ReferenceNote { get; init; } = "";

    /// <summary>The measurements per file, as <see cref="SampleAgreement.FormatTable"/> takes them.</summary>
    [JsonIgnore]
    public IReadOnlyList<(string Name, SampleAgreement Agreement)> Agreements { get; init; } = [];

    /// <summary>The judge's class names by label.</summary>
    [JsonIgnore]
    public IReadOnlyList<string> Classes { get; init; } = [];
}

/// <summary>
/// Judges sample files with an independent classifier: how often it labels a sample as the class that was
/// requested (the measured effect of guidance), with optional by-class grids and a JSON report.
/// </summary>
public sealed class SampleAgreementJob
{
    private readonly SampleAgreementOptions _options;
    private readonly RunContext _run;

    /// <summary>Prepares a job; <see cref="Run"/> does the work.</summary>
    /// <param name="options">The settings.</param>
    /// <param name="run">Where the judge runs, where lines about written grids and warnings go, the decoder's limit
    /// (null: <see cref="RunContext"/>'s defaults).</param>
    public SampleAgreementJob(SampleAgreementOptions options, RunContext? run = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _run = run ?? new RunContext();
    }

    /// <summary>Measures every file; writes the grids and the JSON report when asked.</summary>
    /// <exception cref="ConfigurationException">A setting is invalid, or a file does not fit the judge.</exception>
    /// <exception cref="InvalidDataException">A sample file is not what guided sampling writes.</exception>
    public SampleAgreementReport Run()
    {
        var o = _options;
        if (o.Judge.Path.Length == 0) throw new ConfigurationException("model_path", "is required: the classifier that judges the samples.");
        if (o.BatchSize <= 0) throw new ConfigurationException("batch_size", $"must be positive, got {o.BatchSize}.");
        if (o.GridColumns <= 0) throw new ConfigurationException("grid_columns", $"must be positive, got {o.GridColumns}.");
        _run.Validate();
        using var judge = o.Judge.Load(_run.Device, _run.Warn);
        int t = o.Timestep;
        int steps = judge.Diffusion.Build().NumTimesteps;
        if (t < 0 || t >= steps) throw new ConfigurationException("timestep", $"must lie in [0, {steps}) for the judge's diffusion, got {t}.");

        var measured = new List<(string Name, SampleAgreement Agreement)>();
        foreach (var file in o.Files)
        {
            var (images, labels, size) = ReadSamples(file, judge.Config.ImageSize, judge.NumClasses);
            measured.Add((file, SampleAgreement.Measure(judge.Model, images, labels, t, o.BatchSize)));
            if (o.Grid) WriteGrid(file, images, labels, size, judge.NumClasses);
        }
        var results = measured.Select(r => FileAgreement.From(r.Name, r.Agreement, judge.Classes)).ToArray();
        var (reference, note) = o.Reference ? MeasureReference(judge, t) : (null, "");
        var report = new SampleAgreementReport(o.Judge.Path, t, results)
        {
            Agreements = measured,
            Classes = judge.Classes,
            Reference = reference is { } r ? FileAgreement.From(r.Name, r.Agreement, judge.Classes) : null,
            ReferenceAgreement = reference,
            ReferenceNote = note,
        };
        if (o.JsonPath.Length > 0)
            AtomicFile.Write(o.JsonPath, stream => JsonSerializer.Serialize(stream, report, new JsonSerializerOptions { WriteIndented = true }));
        return report;
    }

    /// <summary>The judge on real images (<see cref="SampleAgreementOptions.ReferenceDir"/> or the bundled split), or
    /// null and the reason it was skipped.</summary>
    private ((string Name, SampleAgreement Agreement)? Measured, string Note) MeasureReference(TrainedClassifier judge, int t)
    {
        var o = _options;
        if (o.ReferenceSamples <= 0) throw new ConfigurationException("reference_samples", $"must be positive, got {o.ReferenceSamples}.");
        int classes = judge.NumClasses;
        IImageSource source;
        string name;
        if (o.ReferenceDir.Length == 0)
        {
            // The bundled split's labels mean Fashion-MNIST's classes only to a judge trained on them.
            if (classes != FashionMnistDemo.Classes.Count)
                return (null, $"no reference: the judge has {classes} classes, not the bundled Fashion-MNIST's {FashionMnistDemo.Classes.Count}; give reference_dir.");
            source = FashionMnistDemo.Load().Validation;
            name = "real: Fashion-MNIST validation";
        }
        else
        {
            if (!Directory.Exists(o.ReferenceDir)) throw new ConfigurationException("reference_dir", $"'{o.ReferenceDir}' is not a folder of images.");
            // Labelled by the judge's own class names, so that label numbers mean the same classes.
            source = new ImageFolderSource(o.ReferenceDir, classes: new ClassMap(judge.Classes), decodeLimit: ImageDecodeLimit.Of(_run));
            name = $"real: {o.ReferenceDir}";
        }
        return ((name, SampleAgreement.MeasureSource(judge.Model, source, o.ReferenceSamples, t, o.BatchSize, o.NumWorkers)), "");
    }

    private void WriteGrid(string file, byte[] images, long[] labels, int size, int numClasses)
    {
        var rows = Enumerable.Range(0, numClasses)
            .Select(c => (IReadOnlyList<int>)Enumerable.Range(0, labels.Length).Where(i => labels[i] == c).Take(_options.GridColumns).ToArray())
            .Where(r => r.Count > 0).ToArray();
        var png = Path.ChangeExtension(file, null) + "_by_class.png";
        ImageGrid.WriteRows(png, images, labels.Length, size, size, rows);
        _run.Log($"wrote {png} (rows: requested classes {string.Join(", ", rows.Select(r => labels[r[0]]))})");
    }

    /// <summary>arr_0 (uint8 N×S×S×3) and arr_1 (labels) of a sample file, checked against the judge.</summary>
    private static (byte[] Images, long[] Labels, int Size) ReadSamples(string file, int judgeSize, int judgeClasses)
    {
        var arrays = NpzReader.Read(file);
        if (!arrays.TryGetValue("arr_0", out var images) || !arrays.TryGetValue("arr_1", out var labelArray))
            throw new InvalidDataException($"'{file}' lacks arr_0 (images) or arr_1 (requested classes); classifier-sample writes both.");
        if (images.Descr is not ("|u1" or "<u1") || images.Shape.Length != 4 || images.Shape[3] != 3 || images.Shape[1] != images.Shape[2])
            throw new InvalidDataException($"'{file}' arr_0 must be uint8 N×S×S×3 images, got {images.Descr} ({string.Join(", ", images.Shape)}).");
        if (images.Shape[1] != judgeSize)
            throw new ConfigurationException("model_path", $"the judge takes {judgeSize}-pixel images but '{file}' holds {images.Shape[1]}-pixel samples.");
        var labels = NpzReader.ToInt64(labelArray);
        if (labels.Length != images.Shape[0])
            throw new InvalidDataException($"'{file}' has {images.Shape[0]} images but {labels.Length} labels.");
        foreach (var y in labels)
            if (y < 0 || y >= judgeClasses)
                throw new InvalidDataException($"'{file}' requests class {y}, but the judge has classes 0..{judgeClasses - 1}.");
        return (images.Data, labels, judgeSize);
    }
}
