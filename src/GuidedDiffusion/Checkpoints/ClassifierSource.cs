using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using static TorchSharp.torch;

namespace GuidedDiffusion.Checkpoints;

/// <summary>
/// Where a trained classifier comes from: its checkpoint, plus the settings that describe it when the file has
/// no sidecar (an original <c>.pt</c>). The jobs that use a classifier take one of these.
/// </summary>
public sealed record ClassifierSource
{
    /// <summary>The checkpoint (.pt or .safetensors).</summary>
    public string Path { get; init; } = "";
    /// <summary>The architecture, for checkpoints without a sidecar (a null NumClasses: read from the checkpoint).</summary>
    public ClassifierConfig Architecture { get; init; } = new();
    /// <summary>The settings of <see cref="Architecture"/> the user typed (a sidecar must agree with each); empty: none.</summary>
    public IReadOnlyCollection<string> ArchitectureGiven { get; init; } = [];
    /// <summary>The noise process, for checkpoints without a sidecar.</summary>
    public DiffusionConfig Diffusion { get; init; } = new();

    /// <summary>
    /// Loads the classifier (<see cref="TrainedClassifier.Load(string, ClassifierConfig, DiffusionConfig, IReadOnlyCollection{string}?, Device?, Action{string}?)"/>)
    /// and moves it to <paramref name="device"/> (null: the CPU); warnings (settings marked) go to <paramref name="warn"/>.
    /// </summary>
    public TrainedClassifier Load(Device? device = null, Action<string>? warn = null) =>
        TrainedClassifier.Load(Path, Architecture, Diffusion, ArchitectureGiven, device, warn);
}
