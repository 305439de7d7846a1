using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Checkpoints;

/// <summary>
/// What loading a classifier and loading a diffusion model share: the checkpoint must exist, its sidecar is found
/// the same way (<see cref="CheckpointManifest.Find"/>, EMA files included), and the network is built and filled on
/// the CPU, then moved, and disposed when any of that fails, so a failed load leaks no native memory.
/// </summary>
internal static class TrainedModelLoader
{
    /// <summary>The checkpoint's sidecar and what it records (both null without one).</summary>
    /// <param name="modelPath">The checkpoint.</param>
    /// <param name="setting">The setting that names it (<c>model_path</c>, <c>classifier_path</c>), for the missing-file error.</param>
    /// <exception cref="CheckpointException">The file does not exist, or its sidecar is unreadable.</exception>
    public static (string? Path, CheckpointManifest? Manifest) Sidecar(string modelPath, string setting)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        if (!File.Exists(modelPath))
            throw new CheckpointException(modelPath, $"{SettingText.Ref(setting)} '{modelPath}' does not exist.");
        var sidecar = CheckpointManifest.Find(modelPath);
        return (sidecar, sidecar is null ? null : CheckpointManifest.Read(sidecar));
    }

    /// <summary>
    /// Builds a network with <paramref name="create"/> on the CPU (whatever torch's default device), copies
    /// <paramref name="weights"/> into it, puts it in eval mode and moves it to <paramref name="device"/>; on any failure
    /// the network is disposed before the exception goes on. The caller keeps the weights.
    /// </summary>
    /// <param name="modelPath">The checkpoint, named in a mismatch error.</param>
    /// <param name="weights">Its state dict, on the CPU.</param>
    /// <param name="create">Makes the empty network.</param>
    /// <param name="device">Where the network goes (null: it stays on the CPU).</param>
    public static TModel Build<TModel>(string modelPath, IReadOnlyDictionary<string, Tensor> weights, Func<TModel> create, Device? device)
        where TModel : nn.Module
    {
        TModel? model = null;
        try
        {
            ComputeDevice.OnCpu(() =>
            {
                model = create();
                StateDictIO.Load(model, weights, modelPath);
                model.eval();
            });
            if (device is not null) model!.to(device);
            return model!;
        }
        catch
        {
            model?.Dispose();
            throw;
        }
    }

    /// <summary><see cref="StateDictIO.Read"/>, then <paramref name="use"/>; the tensors read are disposed afterwards.</summary>
    public static T WithWeights<T>(string modelPath, Func<IReadOnlyDictionary<string, Tensor>, T> use)
    {
        var weights = StateDictIO.Read(modelPath);
        try
        {
            return use(weights);
        }
        finally
        {
            foreach (var tensor in weights.Values) tensor.Dispose();
        }
    }
}
