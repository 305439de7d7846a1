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
    public static string? FindLatest(string directory) => CompleteCheckpoints(directory).FirstOrDefault();

    /// <summary>Every complete checkpoint (model, optimizer and sidecar present) in <paramref name="directory"/>, newest first.</summary>
    public static IEnumerable<string> CompleteCheckpoints(string directory)
    {
        if (!Directory.Exists(directory)) return [];
        return Directory.EnumerateFiles(directory, "model*.json")
            .Select(json => Path.ChangeExtension(json, ".pt"))
            .Where(pt => File.Exists(pt) && IndexPattern().IsMatch(Path.GetFileName(pt))
                && File.Exists(Path.Combine(directory, OptimizerFile(ParseIndex(pt)))))
            .OrderByDescending(ParseIndex);
    }

    /// <summary>
    /// Loads AdamW state written by <c>torch.save(opt.state_dict())</c> — ours, the original's fp32 layout (one state
    /// per parameter) or its fp16 layout (two flat master parameters: every parameter with ndim ≤ 1, then every other
    /// one, each in model order) — into <paramref name="optimizer"/>. Each moment must have its parameter's shape;
    /// the hyperparameters (lr, betas, eps, weight decay) are taken from the file, as PyTorch's load_state_dict does.
    /// </summary>
    /// <param name="optimizer">AdamW over the master parameters, in model order.</param>
    /// <param name="parameterNames">The state-dict name of each of the optimizer's parameters (for messages).</param>
    /// <param name="path">The <c>optNNNNNN.pt</c> file (zip or legacy torch.save format).</param>
    /// <exception cref="CheckpointException">Missing, unreadable, or its state does not fit the parameters (nothing is loaded then).</exception>
    public static void LoadOptimizer(TorchSharp.Modules.AdamW optimizer, IReadOnlyList<string> parameterNames, string path)
    {
        if (!File.Exists(path))
            throw new CheckpointException(path, $"Optimizer state '{path}' is missing; resuming needs the opt file written with the model (or start a fresh run).");
        object? loaded;
        try
        {
            loaded = ComputeDevice.OnCpu(() => TorchSaveFile.Load(path));
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(path, $"Optimizer state '{path}' could not be read: {e.Message}", e);
        }
        try
        {
            using var scope = NewDisposeScope();
            AdamWStateFile.Apply(optimizer, parameterNames, path, loaded);
        }
        finally
        {
            TorchSaveFile.DisposeTensors(loaded);
        }
    }

    /// <summary>
    /// The number of updates an optimizer file records (the largest AdamW <c>step</c> in it), or null when it has no
    /// state or cannot be read. The original's file names do not say it reliably: classifier_train.py's
    /// <c>modelNNNNNN.pt</c> holds NNNNNN + 1 updates, image_train.py's last one NNNNNN.
    /// </summary>
    public static long? OptimizerSteps(string path)
    {
        object? loaded = null;
        try
        {
            loaded = ComputeDevice.OnCpu(() => TorchSaveFile.Load(path));
            return AdamWStateFile.MaxStep(loaded);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
        finally
        {
            TorchSaveFile.DisposeTensors(loaded);
        }
    }

    [GeneratedRegex(@"model(\d+)\.pt$")]
    private static partial Regex IndexPattern();
}
