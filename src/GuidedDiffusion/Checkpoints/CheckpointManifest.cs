using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Checkpoints;

/// <summary>
/// The JSON sidecar written next to each <c>modelNNNNNN.pt</c>: everything needed to rebuild, resume or
/// evaluate the model without repeating flags (the original's checkpoints do not record their config).
/// </summary>
public sealed partial record CheckpointManifest
{
    /// <summary>Format marker of this sidecar.</summary>
    public string Format { get; init; } = "guided-diffusion-net/checkpoint/1";
    /// <summary>Optimizer updates contained in the weights (the original's file index + 1).</summary>
    public long CompletedSteps { get; init; }
    /// <summary>The classifier architecture (null in a diffusion-model checkpoint).</summary>
    public ClassifierConfig? Classifier { get; init; }
    /// <summary>The diffusion model (UNet) architecture (null in a classifier checkpoint).</summary>
    public DiffusionModelConfig? DiffusionModel { get; init; }
    /// <summary>The diffusion flags the model was trained with.</summary>
    public DiffusionConfig Diffusion { get; init; } = new();
    /// <summary>
    /// The loop settings of the run, as the training layer wrote them (snake_case keys); kept as JSON so that
    /// this layer does not depend on the trainer's settings record (null when a run recorded none).
    /// </summary>
    public JsonElement? Training { get; init; }
    /// <summary>Class names in label order.</summary>
    public IReadOnlyList<string> Classes { get; init; } = Array.Empty<string>();
    /// <summary>Data-parallel processes that trained it.</summary>
    public int WorldSize { get; init; } = 1;
    /// <summary>log2 of the fp16 loss scale at save time (null without loss scaling).</summary>
    public double? LgLossScale { get; init; }
    /// <summary>loss-second-moment history [T][10] (null for other samplers).</summary>
    public double[][]? SamplerHistory { get; init; }
    /// <summary>loss-second-moment counts per step.</summary>
    public int[]? SamplerCounts { get; init; }
    /// <summary>Versions of this tool, TorchSharp and .NET.</summary>
    public IReadOnlyDictionary<string, string> Versions { get; init; } = new Dictionary<string, string>();
    /// <summary>When it was written (UTC).</summary>
    public DateTime CreatedUtc { get; init; }

    /// <summary>Serializer settings shared by writing and reading (snake_case, indented).</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Versions recorded in new manifests.</summary>
    public static IReadOnlyDictionary<string, string> CurrentVersions() => new Dictionary<string, string>
    {
        ["guided_diffusion_net"] = typeof(CheckpointManifest).Assembly.GetName().Version?.ToString() ?? "unknown",
        ["torchsharp"] = typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString() ?? "unknown",
        ["dotnet"] = Environment.Version.ToString(),
    };

    /// <summary>Reads a sidecar, with a clear error naming the file when it is not one.</summary>
    public static CheckpointManifest Read(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<CheckpointManifest>(File.ReadAllText(path), JsonOptions)
                ?? throw new InvalidDataException("empty document");
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or NotSupportedException)
        {
            throw new CheckpointException(path, $"'{path}' is not a readable checkpoint sidecar: {e.Message}");
        }
    }

    /// <summary>The sidecar path of a <c>modelNNNNNN.pt</c>.</summary>
    public static string PathFor(string modelPath) => Path.ChangeExtension(modelPath, ".json");

    /// <summary>
    /// The sidecar that describes a checkpoint, of either kind: <c>X.json</c> for <c>X.pt</c>, or for an EMA file
    /// <c>ema_RATE_NNNNNN.pt</c> (which the training jobs save without a sidecar of its own) the <c>modelNNNNNN.json</c>
    /// of the same save; null when there is none (an original checkpoint).
    /// </summary>
    /// <param name="modelPath">The checkpoint.</param>
    public static string? Find(string modelPath)
    {
        var direct = PathFor(modelPath);
        if (File.Exists(direct)) return direct;
        var match = EmaName().Match(Path.GetFileName(modelPath));
        if (!match.Success) return null;
        var sibling = Path.Combine(Path.GetDirectoryName(modelPath) ?? "", $"model{match.Groups[1].Value}.json");
        return File.Exists(sibling) ? sibling : null;
    }

    [GeneratedRegex(@"^ema_[0-9.eE+-]+_(\d+)\.(pt|safetensors)$")]
    private static partial Regex EmaName();
}
