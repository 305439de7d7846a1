using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using static TorchSharp.torch;

namespace GuidedDiffusion.Checkpoints;

/// <summary>
/// Where a trained diffusion model comes from: its checkpoint, plus the settings that describe it when the file has no
/// sidecar (an original <c>*_diffusion.pt</c>). The jobs that use a diffusion model take one of these; the counterpart
/// of <see cref="ClassifierSource"/>.
/// </summary>
public sealed record DiffusionModelSource
{
    /// <summary>The checkpoint (.pt or .safetensors; an EMA file finds the sidecar of its save). Required by every job.</summary>
    public string Path { get; init; } = "";
    /// <summary>The architecture, for checkpoints without a sidecar.</summary>
    public DiffusionModelConfig Architecture { get; init; } = new();
    /// <summary>The noise process, for checkpoints without a sidecar; its <see cref="DiffusionConfig.TimestepRespacing"/> always applies.</summary>
    public DiffusionConfig Diffusion { get; init; } = new();
    /// <summary>The settings of <see cref="Architecture"/> and <see cref="Diffusion"/> the user typed (a sidecar must agree with each); empty: none.</summary>
    public IReadOnlyCollection<string> SettingsGiven { get; init; } = [];

    /// <summary>
    /// Loads the model (<see cref="TrainedDiffusionModel.Load(string, DiffusionModelConfig, DiffusionConfig, IReadOnlyCollection{string}?, Device?)"/>)
    /// and moves it to <paramref name="device"/> (null: the CPU).
    /// </summary>
    public TrainedDiffusionModel Load(Device? device = null) => TrainedDiffusionModel.Load(Path, Architecture, Diffusion, SettingsGiven, device);
}
