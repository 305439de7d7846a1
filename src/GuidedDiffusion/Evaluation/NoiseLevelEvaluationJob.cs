using System.Globalization;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Sources;

namespace GuidedDiffusion.Evaluation;

/// <summary>The settings of <see cref="NoiseLevelEvaluationJob"/>.</summary>
public sealed record NoiseLevelEvaluationOptions
{
    /// <summary>The classifier checkpoint; its sidecar, if any, supplies the architecture and diffusion. Its path is required.</summary>
    public ClassifierSource Classifier { get; init; } = new();
    /// <summary>Validation image folder; empty: the Fashion-MNIST demo's validation split.</summary>
    public string DataDir { get; init; } = "";
    /// <summary>Where an image's class comes from in <see cref="DataDir"/>. Default: the file-name prefix.</summary>
    public LabelRule LabelFrom { get; init; } = LabelRule.Prefix;
    /// <summary>Levels, repeats, batching, workers and seed.</summary>
    public EvaluationOptions Evaluation { get; init; } = new();
    /// <summary>Where eval.csv, eval.json and eval.png go; empty: the checkpoint's folder.</summary>
    public string LogDir { get; init; } = "";
}

/// <summary>What <see cref="NoiseLevelEvaluationJob"/> measured and wrote.</summary>
/// <param name="Report">The per-noise-level table (with the checkpoint and data named).</param>
/// <param name="Files">eval.csv, eval.json and eval.png.</param>
public sealed record NoiseLevelEvaluationResult(EvaluationReport Report, IReadOnlyList<string> Files);

/// <summary>
/// A checkpoint's loss, accuracy, calibration and guidance-gradient norm at each noise level over a whole
/// validation set, written as eval.csv, eval.json and eval.png.
/// </summary>
public sealed class NoiseLevelEvaluationJob
{
    private readonly NoiseLevelEvaluationOptions _options;
    private readonly RunContext _run;

    /// <summary>Prepares a job; <see cref="Run"/> does the work.</summary>
    /// <param name="options">The settings.</param>
    /// <param name="run">Where the classifier runs, where a note about the default data and warnings go, the decoder's
    /// limit (null: <see cref="RunContext"/>'s defaults).</param>
    public NoiseLevelEvaluationJob(NoiseLevelEvaluationOptions options, RunContext? run = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _run = run ?? new RunContext();
    }

    /// <summary>Called after each batch with (batches done, batches in total).</summary>
    public Action<int, int>? OnBatch { get; init; }

    /// <summary>Evaluates and writes the files.</summary>
    /// <exception cref="ConfigurationException">A setting is invalid.</exception>
    /// <exception cref="CheckpointException">The checkpoint is missing or unreadable.</exception>
    public NoiseLevelEvaluationResult Run()
    {
        var o = _options;
        if (o.Classifier.Path.Length == 0) throw new ConfigurationException("model_path", "is required: the classifier checkpoint to evaluate.");
        o.Evaluation.Validate();
        _run.Validate();
        using var classifier = o.Classifier.Load(_run.Device, _run.Warn);
        IImageSource source;
        string dataName;
        if (o.DataDir.Length == 0)
        {
            source = FashionMnistDemo.Load().Validation;
            dataName = $"Fashion-MNIST demo, validation split ({FashionMnistDemo.ValidationCount} images)";
            _run.Log($"No {SettingText.Ref("data_dir")} given: evaluating on the {dataName}.");
        }
        else
        {
            source = new ImageFolderSource(o.DataDir, o.LabelFrom, RecordedClasses(classifier), decodeLimit: ImageDecodeLimit.Of(_run));
            dataName = Path.GetFullPath(o.DataDir);
        }
        var report = NoiseLevelEvaluator.Run(classifier, source, o.Evaluation, OnBatch) with { ModelPath = Path.GetFullPath(o.Classifier.Path), Data = dataName };
        return new NoiseLevelEvaluationResult(report, EvaluationFiles.WriteAll(report, JobInputs.OutputFolder(o.LogDir, o.Classifier.Path)));
    }

    /// <summary>
    /// The checkpoint's class names when its sidecar records them, so folder labels number like training; null (the
    /// folder's own sorted names, the original's rule) when it only has numbers, as an original .pt does.
    /// </summary>
    private static ClassMap? RecordedClasses(TrainedClassifier classifier)
    {
        var numbered = Enumerable.Range(0, classifier.Classes.Count).Select(i => i.ToString(CultureInfo.InvariantCulture));
        return classifier.Classes.SequenceEqual(numbered) ? null : new ClassMap(classifier.Classes);
    }
}
