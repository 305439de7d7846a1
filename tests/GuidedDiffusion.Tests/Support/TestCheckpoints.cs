using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Tests.Support;

/// <summary>Checkpoints laid out as the training jobs save them, without training (the weights are a fresh initialisation).</summary>
public static class TestCheckpoints
{
    /// <summary>Writes <paramref name="manifest"/> as the sidecar of <paramref name="checkpoint"/> (<c>X.json</c> for <c>X.pt</c>).</summary>
    public static void WriteSidecar(string checkpoint, CheckpointManifest manifest) =>
        File.WriteAllText(CheckpointManifest.PathFor(checkpoint), JsonSerializer.Serialize(manifest, CheckpointManifest.JsonOptions));

    /// <summary>
    /// A diffusion model as image-train saves its EMA weights: <c>ema_0.9999_000001.pt</c> in <paramref name="folder"/>,
    /// described only by the sidecar <c>model000001.json</c> of the same save. Returns the EMA file.
    /// </summary>
    public static string DiffusionModelAsEma(string folder, DiffusionModelConfig model, DiffusionConfig diffusion)
    {
        Directory.CreateDirectory(folder);
        var ema = Path.Combine(folder, "ema_0.9999_000001.pt");
        using (var unet = new UNetModel(model)) StateDictIO.Save(unet, ema);
        WriteSidecar(Path.Combine(folder, "model000001.pt"), new CheckpointManifest { CompletedSteps = 2, DiffusionModel = model, Diffusion = diffusion });
        return ema;
    }
}
