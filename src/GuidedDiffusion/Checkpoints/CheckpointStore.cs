using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace GuidedDiffusion.Checkpoints;

/// <summary>
/// Checkpoint files in a run folder, named by the original's rule: <c>modelNNNNNN.pt</c> (plain PyTorch
/// state dict), <c>optNNNNNN.pt</c> (AdamW state_dict), <c>ema_RATE_NNNNNN.pt</c>, where NNNNNN is the index
/// of the update just made; plus our <c>modelNNNNNN.json</c> sidecar, written last, so a checkpoint is
/// complete exactly when its sidecar exists. Every file is written to a temp file and renamed.
/// </summary>
public static partial class CheckpointStore
{
    /// <summary><c>modelNNNNNN.pt</c>.</summary>
    public static string ModelFile(long index) => $"model{index:D6}.pt";

    /// <summary><c>optNNNNNN.pt</c>.</summary>
    public static string OptimizerFile(long index) => $"opt{index:D6}.pt";

    /// <summary><c>ema_RATE_NNNNNN.pt</c> (the original image trainer's name).</summary>
    public static string EmaFile(double rate, long index) => $"ema_{rate.ToString(CultureInfo.InvariantCulture)}_{index:D6}.pt";

    /// <summary>
    /// Writes the model, optimizer and EMA files and then the sidecar for update index <paramref name="index"/>;
    /// the sidecar comes last because its presence marks the checkpoint complete.
    /// </summary>
    /// <param name="directory">The run folder.</param>
    /// <param name="index">The update just made (the original's file index).</param>
    /// <param name="model">The float32 master weights, in the model's state-dict order.</param>
    /// <param name="optimizer">The optimizer whose PyTorch-format state goes to <c>optNNNNNN.pt</c>.</param>
    /// <param name="emas">Each EMA rate with its weights as a state dict.</param>
    /// <param name="manifest">The sidecar.</param>
    /// <returns>The path of <c>modelNNNNNN.pt</c>.</returns>
    /// <exception cref="RunFolderException">A file could not be written (full disk, read-only folder...): the files
    /// of this index written so far are removed, so the previous complete checkpoint stays the newest.</exception>
    public static string Save(string directory, long index, IEnumerable<KeyValuePair<string, Tensor>> model, TorchSharp.Modules.OptimizerHelper optimizer,
        IEnumerable<(double Rate, IEnumerable<KeyValuePair<string, Tensor>> StateDict)> emas, CheckpointManifest manifest)
    {
        Directory.CreateDirectory(directory);
        var modelPath = Path.Combine(directory, ModelFile(index));
        var written = new List<string>();
        string current = modelPath;
        void Write(string path, Action<string> write)
        {
            current = path;
            write(path);
            written.Add(path);
        }
        try
        {
            Write(modelPath, p => StateDictIO.Write(p, model));
            Write(Path.Combine(directory, OptimizerFile(index)), p => AtomicFile.Write(p, stream => ComputeDevice.OnCpu(() => optimizer.save_py(stream, leaveOpen: true))));
            foreach (var (rate, stateDict) in emas)
                Write(Path.Combine(directory, EmaFile(rate, index)), p => StateDictIO.Write(p, stateDict));
            Write(CheckpointManifest.PathFor(modelPath), p => AtomicFile.Write(p, stream => JsonSerializer.Serialize(stream, manifest, CheckpointManifest.JsonOptions)));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CheckpointException { InnerException: IOException or UnauthorizedAccessException })
        {
            var reason = e is CheckpointException { InnerException: { } inner } ? inner.Message : e.Message;
            // Without its sidecar the index is incomplete anyway; removing its files keeps the folder unambiguous.
            foreach (var path in written)
            {
                try { File.Delete(path); }
                catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException) { }
            }
            throw new RunFolderException(current, $"checkpoint {ModelFile(index)} could not be written: '{current}': {reason} " +
                $"(the newest complete checkpoint is still {FindLatest(directory) ?? "none"})", e);
        }
        return modelPath;
    }

    /// <summary>
    /// The update index in a checkpoint name, as the original's parse_resume_step_from_filename reads it:
    /// the digits after the last "model" and before ".pt".
    /// </summary>
    public static long ParseIndex(string modelPath)
    {
        var name = Path.GetFileName(modelPath);
        var match = IndexPattern().Match(name);
        if (!match.Success)
            throw new CheckpointException(modelPath, $"{SettingText.Ref("resume_checkpoint")} '{modelPath}': expected a file named modelNNNNNN.pt (NNNNNN = update index).");
        return long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>The newest complete checkpoint (model, optimizer and sidecar present) in <paramref name="directory"/>, or null.</summary>
    public static string? FindLatest(string directory)
    {
        if (!Directory.Exists(directory)) return null;
        return Directory.EnumerateFiles(directory, "model*.json")
            .Select(json => Path.ChangeExtension(json, ".pt"))
            .Where(pt => File.Exists(pt) && IndexPattern().IsMatch(Path.GetFileName(pt))
                && File.Exists(Path.Combine(directory, OptimizerFile(ParseIndex(pt)))))
            .OrderByDescending(ParseIndex)
            .FirstOrDefault();
    }

    /// <summary>Loads AdamW state saved by us or by the original (PyTorch optimizer state_dict).</summary>
    public static void LoadOptimizer(TorchSharp.Modules.OptimizerHelper optimizer, string path)
    {
        if (!File.Exists(path))
            throw new CheckpointException(path, $"Optimizer state '{path}' is missing; resuming needs the opt file written with the model (or start a fresh run).");
        try
        {
            ComputeDevice.OnCpu(() => optimizer.load_py(path));
        }
        catch (Exception e) when (e is not CheckpointException)
        {
            throw new CheckpointException(path, $"Optimizer state '{path}' could not be loaded: {e.Message}");
        }
    }

    [GeneratedRegex(@"model(\d+)\.pt$")]
    private static partial Regex IndexPattern();
}
