using System.Collections.Specialized;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace GuidedDiffusion.Checkpoints;

/// <summary>
/// Reads and writes state dicts in PyTorch's <c>.pt</c> (zip/pickle, as <c>torch.save(model.state_dict())</c>)
/// and <c>.safetensors</c> formats, chosen by extension. Loading checks every key and shape first and fails as a
/// whole; saving writes float32, contiguous, unprefixed tensors atomically, like the original's checkpoints.
/// </summary>
public static class StateDictIO
{
    /// <summary>Extensions read and written as PyTorch pickles.</summary>
    public static IReadOnlyList<string> PickleExtensions { get; } = new[] { ".pt", ".pth" };

    /// <summary>The safetensors extension.</summary>
    public const string SafetensorsExtension = ".safetensors";

    /// <summary>Reads every tensor of a state-dict file onto the CPU (whatever torch's default device). The caller owns (disposes) the tensors.</summary>
    /// <param name="path">A <c>.pt</c>/<c>.pth</c> or <c>.safetensors</c> file.</param>
    /// <exception cref="CheckpointException">Missing, unreadable, corrupt or not a state dict.</exception>
    public static Dictionary<string, Tensor> Read(string path) => ComputeDevice.OnCpu(() => ReadOnCpu(path));

    private static Dictionary<string, Tensor> ReadOnCpu(string path)
    {
        bool safetensors = IsSafetensors(path);
        if (!File.Exists(path))
            throw new CheckpointException(path, $"Checkpoint file '{path}' does not exist.", new FileNotFoundException(null, path));
        try
        {
            if (safetensors)
            {
                CheckSafetensorsHeader(path);
                return Safetensors.LoadStateDict(path);
            }
            return ToStateDict(path, TorchSaveFile.Load(path));
        }
        catch (Exception e) when (e is not CheckpointException)
        {
            throw new CheckpointException(path,
                $"Cannot read checkpoint '{path}' as {(safetensors ? "safetensors" : "a PyTorch state dict")}: {e.Message}", e);
        }
    }

    /// <summary>
    /// A torch.save object as a state dict: a dict (or OrderedDict, whose <c>_metadata</c> is ignored) of string keys
    /// to tensors. Values of <c>nn.Parameter</c> (the original's trainers save those) arrive as tensors.
    /// </summary>
    private static Dictionary<string, Tensor> ToStateDict(string path, object? loaded)
    {
        if (loaded is not PickleDict table)
        {
            TorchSaveFile.DisposeTensors(loaded);
            throw new CheckpointException(path, $"'{path}' is not a state dict: it holds a {(loaded is null ? "None" : loaded.GetType().Name)} instead of a dict of tensors.");
        }
        var result = new Dictionary<string, Tensor>(table.Count);
        foreach (var (key, value) in table.Entries)
        {
            if (key is not string name || value is not Tensor tensor)
            {
                TorchSaveFile.DisposeTensors(table);
                throw new CheckpointException(path,
                    $"'{path}' is not a state dict of tensors (entry '{key}' is {(value is null ? "None" : value is PickleDict ? "a dict" : value.GetType().Name)}).");
            }
            result[name] = tensor;
        }
        return result;
    }

    /// <summary>The safetensors format's own limit on the JSON header (100 MB).</summary>
    public const long MaxSafetensorsHeader = 100_000_000;

    /// <summary>
    /// The 8-byte header length must fit the file before the reader allocates it (found by fuzzing: a 4-byte
    /// file made TorchSharp.PyBridge allocate 2 GB and take 9 s before failing).
    /// </summary>
    private static void CheckSafetensorsHeader(string path)
    {
        using var file = File.OpenRead(path);
        Span<byte> prefix = stackalloc byte[8];
        if (file.Length < 8 || file.Read(prefix) != 8)
            throw new CheckpointException(path, $"Cannot read checkpoint '{path}' as safetensors: {file.Length} bytes is shorter than the 8-byte header length.");
        ulong headerLength = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > (ulong)Math.Min(file.Length - 8, MaxSafetensorsHeader))
            throw new CheckpointException(path, $"Cannot read checkpoint '{path}' as safetensors: its header claims {headerLength} bytes but the file holds {file.Length - 8} after the length.");
    }

    /// <summary>
    /// Writes a state dict: every tensor as a float32 (floating types) contiguous clone, keys in the given order,
    /// no prefixes; written to a temporary file in the same folder and moved over <paramref name="path"/>, so a
    /// crash never leaves a half-written checkpoint.
    /// </summary>
    /// <param name="path">Target <c>.pt</c>/<c>.pth</c> or <c>.safetensors</c> file; its folder must exist.</param>
    /// <param name="stateDict">Key → tensor, in state-dict order.</param>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> stateDict)
    {
        bool safetensors = IsSafetensors(path);
        using var scope = NewDisposeScope();
        var copies = new List<KeyValuePair<string, Tensor>>();
        using (no_grad())
        {
            foreach (var (key, tensor) in stateDict)
            {
                var value = tensor.detach();
                if (value.is_floating_point() && value.dtype != ScalarType.Float32)
                    value = value.to_type(ScalarType.Float32);
                // A clone owns exactly its elements: PyBridge would otherwise write a view's whole storage.
                copies.Add(new(key, value.to(CPU).contiguous().clone()));
            }
        }
        try
        {
            AtomicFile.Write(path, stream =>
            {
                if (safetensors)
                {
                    Safetensors.SaveStateDict(stream, copies.ToDictionary(p => p.Key, p => p.Value), leaveOpen: true);
                }
                else
                {
                    var ordered = new OrderedDictionary();
                    foreach (var (key, value) in copies) ordered.Add(key, value);
                    PyTorchPickler.PickleStateDict(stream, ordered, leaveOpen: true);
                }
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(path, $"Cannot write checkpoint '{path}': {e.Message}", e);
        }
    }

    /// <summary>Saves <paramref name="module"/>'s state dict (float32 copies) to <paramref name="path"/>.</summary>
    /// <param name="module">The model.</param>
    /// <param name="path">Target <c>.pt</c>/<c>.pth</c> or <c>.safetensors</c> file.</param>
    public static void Save(nn.Module module, string path) => Write(path, module.state_dict());

    /// <summary>
    /// Loads a checkpoint into <paramref name="module"/>: every key and shape is checked first and all mismatches
    /// are reported in one <see cref="StateDictMismatchException"/>; only a complete match is copied in (values are
    /// converted to each parameter's dtype, so a float32 checkpoint loads into a float16/bfloat16 trunk). Afterwards
    /// every parameter requires gradients.
    /// </summary>
    /// <param name="module">The model to fill.</param>
    /// <param name="path">A <c>.pt</c>/<c>.pth</c> or <c>.safetensors</c> file.</param>
    public static void Load(nn.Module module, string path)
    {
        var source = Read(path);
        try
        {
            Load(module, source, path);
        }
        finally
        {
            foreach (var tensor in source.Values) tensor.Dispose();
        }
    }

    /// <summary>
    /// Copies an in-memory state dict into <paramref name="module"/> with the same all-or-nothing checks as
    /// <see cref="Load(nn.Module, string)"/>. The caller keeps ownership of <paramref name="source"/>.
    /// </summary>
    /// <param name="module">The model to fill.</param>
    /// <param name="source">Key → tensor.</param>
    /// <param name="sourceName">How to name the source in errors (a file path).</param>
    public static void Load(nn.Module module, IReadOnlyDictionary<string, Tensor> source, string sourceName)
    {
        var target = module.state_dict();
        var missing = target.Keys.Where(k => !source.ContainsKey(k)).ToList();
        var unexpected = source.Keys.Where(k => !target.ContainsKey(k)).ToList();
        var shapes = target
            .Where(p => source.TryGetValue(p.Key, out var s) && !s.shape.SequenceEqual(p.Value.shape))
            .Select(p => new ShapeMismatch(p.Key, p.Value.shape, source[p.Key].shape))
            .ToList();
        if (missing.Count > 0 || unexpected.Count > 0 || shapes.Count > 0)
            throw new StateDictMismatchException(sourceName, missing, unexpected, shapes);

        using (no_grad())
        {
            foreach (var (key, tensor) in target)
                tensor.copy_(source[key]);
        }
        foreach (var parameter in module.parameters())
            parameter.requires_grad = true;
    }

    private static bool IsSafetensors(string path)
    {
        string extension = Path.GetExtension(path).ToLowerInvariant();
        if (extension == SafetensorsExtension) return true;
        if (PickleExtensions.Contains(extension)) return false;
        throw new CheckpointException(path,
            $"Checkpoint '{path}' has an unknown extension '{extension}'; use {string.Join(", ", PickleExtensions)} or {SafetensorsExtension}.");
    }
}
