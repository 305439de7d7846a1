using System.IO.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Checkpoints;

/// <summary>
/// Reads what <c>torch.save</c> writes, torch 0.4 to 2.x: the zip archive (torch ≥ 1.6: <c>data.pkl</c> plus one
/// entry per storage) and the legacy stream (magic number, protocol and system-info pickles, the object pickle,
/// the storage keys, then each storage's element count and bytes). Tensors come from <c>_rebuild_tensor</c>,
/// <c>_rebuild_tensor_v2</c>/<c>_v3</c> and <c>nn.Parameter</c>'s <c>_rebuild_parameter</c> (with or without its
/// requires_grad and hooks arguments) and <c>_rebuild_parameter_with_state</c>; each is an independent contiguous
/// CPU copy, so views of one storage (the original's fp16 master weights) come apart correctly. Dicts come back as
/// <see cref="PickleDict"/> in file order with their attributes (<c>_metadata</c>). Any other class or function
/// named by the file is refused by name: nothing in the file can run code.
/// </summary>
internal static class TorchSaveFile
{
    private static readonly byte[] ZipSignature = { 0x50, 0x4b, 0x03, 0x04 };

    // The legacy format's first pickle: torch/serialization.py's MAGIC_NUMBER, 0x1950a86a20f9469cfc6c.
    private static readonly System.Numerics.BigInteger LegacyMagic = System.Numerics.BigInteger.Parse("119547037146038801333356");

    /// <summary>Reads <paramref name="path"/> and returns its object (tensors materialised on the CPU).</summary>
    /// <exception cref="InvalidDataException">Not a torch.save file, or it holds something other than plain data and tensors.</exception>
    public static object? Load(string path)
    {
        using var file = File.OpenRead(path);
        var head = new byte[4];
        int read = file.ReadAtLeast(head, 4, throwOnEndOfStream: false);
        file.Position = 0;
        if (read == 4 && head.AsSpan().SequenceEqual(ZipSignature))
            return LoadZip(file);
        if (read >= 2 && head[0] == 0x80)
            return LoadLegacy(file);
        throw new InvalidDataException("it is neither a torch.save zip archive nor a legacy torch.save stream (unknown first bytes)");
    }

    private static object? LoadZip(Stream file)
    {
        using var archive = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
        var pickle = archive.Entries.FirstOrDefault(e => e.FullName == "data.pkl" || e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal))
            ?? throw new InvalidDataException("the zip archive has no data.pkl (it was not written by torch.save)");
        string prefix = pickle.FullName[..^"data.pkl".Length];
        var order = archive.GetEntry(prefix + "byteorder");
        if (order is not null)
        {
            using var reader = new StreamReader(order.Open());
            if (reader.ReadToEnd().Trim() == "big")
                throw new InvalidDataException("its tensors are stored big-endian (written on a big-endian machine)");
        }
        var storages = new Dictionary<string, Storage>();
        object? PersistentLoad(object? pid)
        {
            var (kind, dtype, key, numel, _) = StorageId(pid);
            if (storages.TryGetValue(key, out var known)) return known;
            var entry = archive.GetEntry(prefix + "data/" + key)
                ?? throw new InvalidDataException($"storage '{key}' is named in data.pkl but missing from the archive");
            var storage = new Storage(key, kind, dtype, entry.Length);
            using (var data = entry.Open()) storage.Fill(data);
            storages[key] = storage;
            return storage;
        }
        try
        {
            using var stream = pickle.Open();
            var result = new PickleMachine(stream, Call, PersistentLoad).Load();
            return Materialise(result);
        }
        finally
        {
            foreach (var storage in storages.Values) storage.Dispose();
        }
    }

    private static object? LoadLegacy(Stream file)
    {
        object? NoPersistent(object? _) => throw new InvalidDataException("a persistent id outside the object pickle");
        object? NoCall(PickleGlobal g, object?[] _) => throw new InvalidDataException($"'{g}' in a header pickle");
        var magic = new PickleMachine(file, NoCall, NoPersistent).Load();
        if (magic is not System.Numerics.BigInteger number || number != LegacyMagic)
            throw new InvalidDataException("it starts with a pickle but not torch.save's magic number (not a torch.save file)");
        var protocol = new PickleMachine(file, NoCall, NoPersistent).Load();
        if (protocol is not 1001L)
            throw new InvalidDataException($"legacy torch.save protocol {protocol} (only 1001 exists)");
        if (new PickleMachine(file, NoCall, NoPersistent).Load() is PickleDict info
            && info.TryGet("little_endian", out var little) && little is false)
            throw new InvalidDataException("its tensors are stored big-endian (written on a big-endian machine)");

        var storages = new Dictionary<string, Storage>();
        var views = new List<(Storage View, string Root, long Offset)>();
        object? PersistentLoad(object? pid)
        {
            var (kind, dtype, key, numel, view) = StorageId(pid);
            if (!storages.TryGetValue(key, out var root))
                storages[key] = root = new Storage(key, kind, dtype, numel * ElementSize(dtype));
            if (view is null) return root;
            // Old torch (< 1.6) pickled a storage slice as (view key, offset, size) on its root storage.
            var (viewKey, offset, size) = view.Value;
            if (storages.TryGetValue(viewKey, out var existing)) return existing;
            var slice = new Storage(viewKey, kind, dtype, size * ElementSize(dtype));
            storages[viewKey] = slice;
            views.Add((slice, key, offset));
            return slice;
        }
        try
        {
            var result = new PickleMachine(file, Call, PersistentLoad).Load();
            if (new PickleMachine(file, NoCall, NoPersistent).Load() is not List<object?> keys)
                throw new InvalidDataException("the storage key list after the object pickle is missing");
            using var reader = new BinaryReader(file, System.Text.Encoding.UTF8, leaveOpen: true);
            foreach (var keyObject in keys)
            {
                var key = keyObject?.ToString() ?? "";
                if (!storages.TryGetValue(key, out var storage))
                    throw new InvalidDataException($"storage '{key}' is listed but never used");
                long count = reader.ReadInt64();
                if (count * ElementSize(storage.DType) != storage.ByteLength)
                    throw new InvalidDataException($"storage '{key}' holds {count} elements, the pickle says {storage.ByteLength / ElementSize(storage.DType)}");
                storage.Fill(file);
            }
            foreach (var (view, root, offset) in views)
                view.FillFrom(storages[root], offset);
            return Materialise(result);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException("the file ends inside its storage data (truncated)");
        }
        finally
        {
            foreach (var storage in storages.Values) storage.Dispose();
        }
    }

    private static (string Kind, ScalarType DType, string Key, long Numel, (string Key, long Offset, long Size)? View) StorageId(object? pid)
    {
        if (pid is not object?[] { Length: >= 5 } id || id[0] is not "storage")
            throw new InvalidDataException($"a persistent id that is not a storage ({Describe(pid)})");
        if (id[1] is not PickleGlobal type)
            throw new InvalidDataException($"a storage whose type is {Describe(id[1])}");
        string key = id[2]?.ToString() ?? throw new InvalidDataException("a storage without a key");
        long numel = id[4] is long n ? n : throw new InvalidDataException($"storage '{key}' has no element count");
        (string, long, long)? view = id.Length > 5 && id[5] is object?[] { Length: 3 } v
            ? (v[0]?.ToString() ?? "", (long)v[1]!, (long)v[2]!)
            : null;
        // torch ≥ 2.1 writes UntypedStorage for dtypes without a typed storage class; _rebuild_tensor_v3 names the dtype.
        var dtype = type.Name == "UntypedStorage" ? ScalarType.Byte : StorageDType(type);
        return (type.Name, dtype, key, numel, view);
    }

    private static ScalarType StorageDType(PickleGlobal type) => type.Name switch
    {
        "DoubleStorage" => ScalarType.Float64,
        "FloatStorage" => ScalarType.Float32,
        "HalfStorage" => ScalarType.Float16,
        "BFloat16Storage" => ScalarType.BFloat16,
        "LongStorage" => ScalarType.Int64,
        "IntStorage" => ScalarType.Int32,
        "ShortStorage" => ScalarType.Int16,
        "CharStorage" => ScalarType.Int8,
        "ByteStorage" => ScalarType.Byte,
        "BoolStorage" => ScalarType.Bool,
        "ComplexFloatStorage" => ScalarType.ComplexFloat32,
        "ComplexDoubleStorage" => ScalarType.ComplexFloat64,
        _ => throw new InvalidDataException($"storage type '{type}' is not supported"),
    };

    private static ScalarType DTypeByName(object? value) => value is PickleGlobal { Module: "torch" } g ? g.Name switch
    {
        "float64" or "double" => ScalarType.Float64,
        "float32" or "float" => ScalarType.Float32,
        "float16" or "half" => ScalarType.Float16,
        "bfloat16" => ScalarType.BFloat16,
        "int64" or "long" => ScalarType.Int64,
        "int32" or "int" => ScalarType.Int32,
        "int16" or "short" => ScalarType.Int16,
        "int8" => ScalarType.Int8,
        "uint8" => ScalarType.Byte,
        "bool" => ScalarType.Bool,
        "complex64" or "cfloat" => ScalarType.ComplexFloat32,
        "complex128" or "cdouble" => ScalarType.ComplexFloat64,
        _ => throw new InvalidDataException($"tensor dtype 'torch.{g.Name}' is not supported"),
    } : throw new InvalidDataException($"a tensor dtype that is {Describe(value)}");

    private static long ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 or ScalarType.ComplexFloat32 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.ComplexFloat64 => 16,
        _ => 1,
    };

    /// <summary>The globals a state dict or optimizer state may call; everything else is refused by name.</summary>
    private static object? Call(PickleGlobal callable, object?[] args)
    {
        switch (callable.Module, callable.Name)
        {
            case ("collections", "OrderedDict"):
            case ("builtins", "dict"):
            case ("__builtin__", "dict"):
                var dict = new PickleDict();
                if (args.Length > 0 && args[0] is List<object?> pairs)
                    foreach (var pair in pairs.OfType<object?[]>())
                        dict.Set(pair[0]!, pair[1]);
                return dict;
            case ("torch._utils", "_rebuild_tensor"):
                return Rebuild(args, "_rebuild_tensor", dtype: null);
            case ("torch._utils", "_rebuild_tensor_v2"):
                return Rebuild(args, "_rebuild_tensor_v2", dtype: null);
            case ("torch._utils", "_rebuild_tensor_v3"):
                return Rebuild(args, "_rebuild_tensor_v3", dtype: args.Length > 6 ? DTypeByName(args[6]) : throw new InvalidDataException("_rebuild_tensor_v3 without its dtype argument"));
            case ("torch._utils", "_rebuild_parameter"):
            case ("torch._utils", "_rebuild_parameter_with_state"):
                // (data[, requires_grad[, backward_hooks[, state]]]): a state dict only needs the data.
                if (args.Length == 0 || args[0] is not PendingTensor data)
                    throw new InvalidDataException($"{callable.Name} without a tensor argument");
                return data;
            case ("torch", "Size"):
                return args.Length > 0 ? args[0] : Array.Empty<object?>();
            case ("builtins", "set"):
            case ("builtins", "frozenset"):
                return args.Length > 0 ? args[0] : new List<object?>();
            default:
                throw new InvalidDataException(
                    $"it holds a pickled '{callable}', not only tensors and plain data (save a state_dict, e.g. torch.save(model.state_dict(), path))");
        }
    }

    private static PendingTensor Rebuild(object?[] args, string function, ScalarType? dtype)
    {
        if (args.Length < 4 || args[0] is not Storage storage || args[1] is not long offset)
            throw new InvalidDataException($"{function} with unexpected arguments ({string.Join(", ", args.Take(4).Select(Describe))})");
        long[] Longs(object? value, string what) => value is object?[] items && items.All(i => i is long)
            ? items.Cast<long>().ToArray()
            : throw new InvalidDataException($"{function}: its {what} is {Describe(value)}");
        return new PendingTensor(storage, dtype ?? storage.DType, offset, Longs(args[2], "size"), Longs(args[3], "stride"));
    }

    /// <summary>Replaces every <see cref="PendingTensor"/> in the graph by a contiguous CPU tensor of its own.</summary>
    private static object? Materialise(object? value)
    {
        var done = new Dictionary<PendingTensor, Tensor>(ReferenceEqualityComparer.Instance);
        var visited = new HashSet<object>(ReferenceEqualityComparer.Instance);
        object? Visit(object? v)
        {
            switch (v)
            {
                case PendingTensor pending:
                    if (!done.TryGetValue(pending, out var tensor))
                        done[pending] = tensor = pending.Create();
                    return tensor;
                case PickleDict dict when visited.Add(dict):
                    foreach (var (key, item) in dict.Entries.ToList()) dict.Replace(key, Visit(item));
                    foreach (var key in dict.Attributes.Keys.ToList()) dict.Attributes[key] = Visit(dict.Attributes[key]);
                    return dict;
                case List<object?> list when visited.Add(list):
                    for (int i = 0; i < list.Count; i++) list[i] = Visit(list[i]);
                    return list;
                case object?[] tuple when visited.Add(tuple):
                    for (int i = 0; i < tuple.Length; i++) tuple[i] = Visit(tuple[i]);
                    return tuple;
                case Storage:
                    throw new InvalidDataException("it holds a bare storage, not a tensor");
                default:
                    return v;
            }
        }
        try
        {
            return Visit(value);
        }
        catch
        {
            foreach (var tensor in done.Values) tensor.Dispose();
            throw;
        }
    }

    /// <summary>Disposes every tensor in a loaded object graph.</summary>
    public static void DisposeTensors(object? value)
    {
        switch (value)
        {
            case Tensor tensor: tensor.Dispose(); break;
            case PickleDict dict:
                foreach (var (_, item) in dict.Entries) DisposeTensors(item);
                foreach (var item in dict.Attributes.Values) DisposeTensors(item);
                break;
            case IEnumerable<object?> items when value is not string: foreach (var item in items) DisposeTensors(item); break;
        }
    }

    private static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"'{s}'",
        long or double or bool => value.ToString()!,
        PickleGlobal g => g.ToString(),
        _ => "a " + value.GetType().Name,
    };

    /// <summary>One storage: its bytes, read once and shared by every tensor that views it.</summary>
    private sealed class Storage : IDisposable
    {
        private byte[]? _bytes;

        public Storage(string key, string kind, ScalarType dtype, long byteLength)
        {
            Key = key;
            Kind = kind;
            DType = dtype;
            ByteLength = byteLength;
        }

        public string Key { get; }
        public string Kind { get; }
        public ScalarType DType { get; }
        public long ByteLength { get; }

        public void Fill(Stream data)
        {
            if (ByteLength > Array.MaxLength)
                throw new InvalidDataException($"storage '{Key}' has {ByteLength} bytes, more than one array can hold");
            _bytes = new byte[ByteLength];
            data.ReadExactly(_bytes);
        }

        public void FillFrom(Storage root, long elementOffset)
        {
            long start = elementOffset * ElementSize(root.DType);
            if (root._bytes is null || start < 0 || start + ByteLength > root._bytes.LongLength)
                throw new InvalidDataException($"storage view '{Key}' lies outside its root storage '{root.Key}'");
            _bytes = root._bytes.AsSpan((int)start, (int)ByteLength).ToArray();
        }

        /// <summary>A tensor with <paramref name="dtype"/>'s elements over these bytes (the caller disposes it).</summary>
        public Tensor AsTensor(ScalarType dtype)
        {
            if (_bytes is null) throw new InvalidDataException($"storage '{Key}' has no data");
            long size = ElementSize(dtype);
            if (_bytes.LongLength % size != 0)
                throw new InvalidDataException($"storage '{Key}' has {_bytes.LongLength} bytes, not a whole number of {dtype} elements");
            var tensor = empty(_bytes.LongLength / size, dtype, CPU);
            if (_bytes.Length > 0) tensor.bytes = _bytes;
            return tensor;
        }

        public void Dispose() => _bytes = null;
    }

    /// <summary>A tensor named by a rebuild call, created once all storages are read.</summary>
    private sealed class PendingTensor
    {
        private readonly Storage _storage;
        private readonly ScalarType _dtype;
        private readonly long _offset;
        private readonly long[] _size;
        private readonly long[] _stride;

        public PendingTensor(Storage storage, ScalarType dtype, long offset, long[] size, long[] stride)
        {
            if (size.Length != stride.Length)
                throw new InvalidDataException($"a tensor on storage '{storage.Key}' has {size.Length} sizes but {stride.Length} strides");
            _storage = storage;
            _dtype = dtype;
            _offset = offset;
            _size = size;
            _stride = stride;
        }

        public Tensor Create()
        {
            using var storage = _storage.AsTensor(_dtype);
            long numel = storage.shape[0];
            long last = _offset;
            bool empty = _size.Any(s => s == 0);
            for (int i = 0; i < _size.Length; i++)
            {
                if (_size[i] < 0 || _stride[i] < 0)
                    throw new InvalidDataException($"a tensor on storage '{_storage.Key}' has a negative size or stride");
                last += (_size[i] - 1) * _stride[i];
            }
            if (_offset < 0 || (!empty && last >= numel))
                throw new InvalidDataException(
                    $"a tensor [{string.Join(", ", _size)}] at offset {_offset} reaches element {last} of storage '{_storage.Key}', which has {numel}");
            using var view = storage.as_strided(_size, _stride, empty ? 0 : _offset);
            return view.contiguous().clone();
        }
    }
}
