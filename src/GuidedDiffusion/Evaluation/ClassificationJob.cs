using System.Text.Json.Serialization;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Transforms;
using static TorchSharp.torch;

namespace GuidedDiffusion.Evaluation;

/// <summary>The settings of <see cref="ClassificationJob"/>.</summary>
public sealed record ClassificationOptions
{
    /// <summary>The classifier checkpoint; its sidecar, if any, supplies the architecture. Its path is required.</summary>
    public ClassifierSource Classifier { get; init; } = new();
    /// <summary>Timestep t given to the classifier (a spaced index of the training diffusion). Default 0.</summary>
    public int Timestep { get; init; }
    /// <summary>Noise each image to step t with q_sample and noise from this seed; null: the clean image with timestep t.</summary>
    public long? NoiseSeed { get; init; }
    /// <summary>The image files.</summary>
    public IReadOnlyList<string> Images { get; init; } = [];
    /// <summary>Classes reported per image (at most the number of classes). Default 5.</summary>
    public int TopK { get; init; } = 5;
}

/// <summary>One class of an image's top list.</summary>
/// <param name="Class">The label.</param>
/// <param name="Name">Its class name.</param>
/// <param name="Prob">Its softmax probability.</param>
public sealed record ClassProbability(
    [property: JsonPropertyName("class")] int Class,
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("prob")] float Prob);

/// <summary>The classifier's answer for one image (the JSON schema of <c>classify --json</c>).</summary>
/// <param name="Path">The image file.</param>
/// <param name="Logits">All logits.</param>
/// <param name="Top">The most probable classes, most probable first.</param>
public sealed record ImageClassification(
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("logits")] float[] Logits,
    [property: JsonPropertyName("top")] IReadOnlyList<ClassProbability> Top);

/// <summary>
/// Classifies image files with a classifier checkpoint: each image gets the validation loader's preprocessing
/// (<see cref="ImagePreprocessor.ValidationInput"/>), optionally q_sample noise to step t, then the top classes.
/// </summary>
public sealed class ClassificationJob
{
    private readonly ClassificationOptions _options;
    private readonly RunContext _run;

    /// <summary>Prepares a job; <see cref="Run"/> does the work.</summary>
    /// <param name="options">The settings.</param>
    /// <param name="run">Where the classifier runs, where warnings go, the decoder's limit (null: <see cref="RunContext"/>'s defaults).</param>
    public ClassificationJob(ClassificationOptions options, RunContext? run = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _run = run ?? new RunContext();
    }

    /// <summary>Classifies every image of the options, in order.</summary>
    /// <exception cref="ConfigurationException">A setting is invalid.</exception>
    /// <exception cref="CheckpointException">The checkpoint is missing or unreadable.</exception>
    public IReadOnlyList<ImageClassification> Run()
    {
        var options = _options;
        var device = _run.Device;
        if (options.Classifier.Path.Length == 0) throw new ConfigurationException("model_path", "is required: the classifier checkpoint to use.");
        _run.Validate();
        using var classifier = options.Classifier.Load(device, _run.Warn);
        var diffusion = classifier.Diffusion.Build();
        int t = options.Timestep;
        if (t < 0 || t >= diffusion.NumTimesteps)
            throw new ConfigurationException("timestep", $"must lie in [0, {diffusion.NumTimesteps}) for this diffusion, got {t}.");

        var results = new List<ImageClassification>();
        var limit = ImageDecodeLimit.Of(_run);
        int size = classifier.Config.ImageSize;
        foreach (var file in options.Images)
        {
            using var scope = NewDisposeScope();
            var x = tensor(ImagePreprocessor.ValidationInput(ImageDecoder.Decode(file, limit), size), new long[] { 1, 3, size, size }, device: device);
            var ts = tensor(new long[] { t }, device: device);
            if (options.NoiseSeed is { } seed)
            {
                // Drawn on the CPU, as the per-noise-level evaluation does: a seed noises an image alike on every device.
                using var generator = new Generator((ulong)seed);
                x = diffusion.QSample(x, ts, randn(x.shape, device: CPU, generator: generator).to(device));
            }
            var logits = classifier.Logits(x, ts)[0];
            var top = logits.softmax(0).topk(Math.Min(options.TopK, classifier.NumClasses));
            var indices = ComputeDevice.ToArray<long>(top.indexes);
            var values = ComputeDevice.ToArray<float>(top.values);
            var entries = indices.Select((c, i) => new ClassProbability((int)c, classifier.Classes[(int)c], values[i])).ToArray();
            results.Add(new ImageClassification(file, ComputeDevice.ToArray<float>(logits), entries));
        }
        return results;
    }
}
