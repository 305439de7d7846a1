using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace GuidedDiffusion.Checkpoints;

/// <summary>A Python dict or OrderedDict read from a pickle: entries in insertion order, plus the attributes
/// that BUILD set on it (a state dict's <c>_metadata</c>).</summary>
internal sealed class PickleDict
{
    private readonly Dictionary<object, object?> _values = new(PickleKeyComparer.Instance);
    private readonly List<object> _order = new();

    /// <summary>Attributes set by BUILD (an OrderedDict's instance <c>__dict__</c>, e.g. <c>_metadata</c>).</summary>
    public Dictionary<string, object?> Attributes { get; } = new();

    public int Count => _order.Count;

    public IEnumerable<KeyValuePair<object, object?>> Entries => _order.Select(k => new KeyValuePair<object, object?>(k, _values[k]));

    public void Set(object key, object? value)
    {
        if (!_values.ContainsKey(key)) _order.Add(key);
        _values[key] = value;
    }

    public bool TryGet(object key, out object? value) => _values.TryGetValue(key, out value);

    public void Replace(object key, object? value) => _values[key] = value;
}

/// <summary>A global (module, name) named by GLOBAL/STACK_GLOBAL: a class or function the pickle calls.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    public override string ToString() => $"{Module}.{Name}";
}

/// <summary>Dict keys as Python compares them: ints by value whatever their width, strings ordinally, tuples element-wise.</summary>
internal sealed class PickleKeyComparer : IEqualityComparer<object>
{
    public static PickleKeyComparer Instance { get; } = new();

    public new bool Equals(object? x, object? y) => (x, y) switch
    {
        (object?[] a, object?[] b) => a.Length == b.Length && a.Zip(b).All(p => Equals(p.First, p.Second)),
        (BigInteger a, BigInteger b) => a == b,
        _ => object.Equals(x, y),
    };

    public int GetHashCode(object obj) => obj switch
    {
        object?[] a => a.Aggregate(17, (h, e) => h * 31 + (e is null ? 0 : GetHashCode(e))),
        _ => obj.GetHashCode(),
    };
}

/// <summary>
/// The pickle virtual machine, protocols 0–5, for the data that <c>torch.save</c> writes: no Python objects are
/// created; calls of globals (REDUCE, NEWOBJ) and persistent ids are handed to the caller, so nothing in a file
/// can run code. Integers are <see cref="long"/> (or <see cref="BigInteger"/> when wider), floats
/// <see cref="double"/>, tuples <c>object?[]</c>, lists <see cref="List{T}"/>, dicts <see cref="PickleDict"/>.
/// </summary>
internal sealed class PickleMachine
{
    private static readonly object Mark = new();
    private readonly BinaryReader _in;
    private readonly Func<PickleGlobal, object?[], object?> _call;
    private readonly Func<object?, object?> _persistentLoad;
    private readonly List<object?> _stack = new();
    private readonly Dictionary<long, object?> _memo = new();

    /// <param name="input">The pickle, positioned at its first opcode; read up to STOP.</param>
    /// <param name="call">Builds the value of <c>global(*args)</c> (REDUCE and NEWOBJ), or throws for what it does not know.</param>
    /// <param name="persistentLoad">The value of a persistent id (torch.save's storages).</param>
    public PickleMachine(Stream input, Func<PickleGlobal, object?[], object?> call, Func<object?, object?> persistentLoad)
    {
        _in = new BinaryReader(input, Encoding.UTF8, leaveOpen: true);
        _call = call;
        _persistentLoad = persistentLoad;
    }

    /// <summary>Runs the pickle to its STOP opcode and returns its value.</summary>
    /// <exception cref="InvalidDataException">An unknown or malformed opcode, or the data ends early.</exception>
    public object? Load()
    {
        try
        {
            while (true)
            {
                byte op = _in.ReadByte();
                if (op == (byte)'.') return Pop();
                Step(op);
            }
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException("the pickle ends before its STOP opcode");
        }
        catch (Exception e) when (e is InvalidCastException or ArgumentOutOfRangeException or KeyNotFoundException)
        {
            throw new InvalidDataException($"malformed pickle at byte {_in.BaseStream.Position}: {e.Message}", e);
        }
    }

    private void Step(byte op)
    {
        switch (op)
        {
            case 0x80: _in.ReadByte(); break; // PROTO
            case 0x95: _in.ReadInt64(); break; // FRAME: frames are only a buffering hint
            case (byte)'(': _stack.Add(Mark); break;
            case (byte)'0': Pop(); break;
            case (byte)'1': PopMark(); break;
            case (byte)'2': Push(_stack[^1]); break;
            case (byte)'N': Push(null); break;
            case 0x88: Push(true); break;
            case 0x89: Push(false); break;
            case (byte)'J': Push((long)_in.ReadInt32()); break;
            case (byte)'K': Push((long)_in.ReadByte()); break;
            case (byte)'M': Push((long)_in.ReadUInt16()); break;
            case 0x8a: Push(ReadLong(_in.ReadByte())); break;
            case 0x8b: Push(ReadLong(checked((int)_in.ReadUInt32()))); break;
            case (byte)'I': Push(ParseIntLine(ReadLine())); break;
            case (byte)'L': Push(ParseInteger(ReadLine().TrimEnd('L'))); break;
            case (byte)'F': Push(double.Parse(ReadLine(), CultureInfo.InvariantCulture)); break;
            case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(_in.ReadBytes(8))); break;
            case (byte)'X': Push(ReadUtf8(checked((int)_in.ReadUInt32()))); break;
            case 0x8c: Push(ReadUtf8(_in.ReadByte())); break;
            case 0x8d: Push(ReadUtf8(checked((int)_in.ReadUInt64()))); break;
            case (byte)'V': Push(ReadLine()); break;
            case (byte)'T': Push(ReadLatin1(checked((int)_in.ReadUInt32()))); break;
            case (byte)'U': Push(ReadLatin1(_in.ReadByte())); break;
            case (byte)'S': Push(UnquotePython2String(ReadLine())); break;
            case (byte)'B': Push(ReadExactly(checked((int)_in.ReadUInt32()))); break;
            case (byte)'C': Push(ReadExactly(_in.ReadByte())); break;
            case 0x8e: Push(ReadExactly(checked((int)_in.ReadUInt64()))); break;
            case (byte)')': Push(Array.Empty<object?>()); break;
            case (byte)'t': Push(PopMark().ToArray()); break;
            case 0x85: Push(new[] { Pop() }); break;
            case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; }
            case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; }
            case (byte)']': Push(new List<object?>()); break;
            case (byte)'l': Push(PopMark()); break;
            case (byte)'a': { var item = Pop(); ((List<object?>)Top()!).Add(item); break; }
            case (byte)'e': { var items = PopMark(); ((List<object?>)Top()!).AddRange(items); break; }
            case (byte)'}': Push(new PickleDict()); break;
            case (byte)'d': { var items = PopMark(); var dict = new PickleDict(); SetItems(dict, items); Push(dict); break; }
            case (byte)'s': { var value = Pop(); var key = Pop(); AsDict(Top()).Set(Key(key), value); break; }
            case (byte)'u': { var items = PopMark(); SetItems(AsDict(Top()), items); break; }
            case 0x8f: Push(new List<object?>()); break; // EMPTY_SET: a list is enough, state dicts hold no sets
            case 0x90: { var items = PopMark(); ((List<object?>)Top()!).AddRange(items); break; }
            case 0x91: Push(PopMark()); break;
            case (byte)'c': Push(new PickleGlobal(ReadLine(), ReadLine())); break;
            case 0x93: { var name = (string)Pop()!; var module = (string)Pop()!; Push(new PickleGlobal(module, name)); break; }
            case (byte)'R': { var args = (object?[])Pop()!; var callable = Pop(); Push(_call(AsGlobal(callable, "REDUCE"), args)); break; }
            case 0x81: { var args = (object?[])Pop()!; var cls = Pop(); Push(_call(AsGlobal(cls, "NEWOBJ"), args)); break; }
            case 0x92: { Pop(); var args = (object?[])Pop()!; var cls = Pop(); Push(_call(AsGlobal(cls, "NEWOBJ_EX"), args)); break; }
            case (byte)'b': Build(Pop(), Top()); break;
            case (byte)'Q': Push(_persistentLoad(Pop())); break;
            case (byte)'P': Push(_persistentLoad(ReadLine())); break;
            case (byte)'p': _memo[long.Parse(ReadLine(), CultureInfo.InvariantCulture)] = Top(); break;
            case (byte)'q': _memo[_in.ReadByte()] = Top(); break;
            case (byte)'r': _memo[_in.ReadUInt32()] = Top(); break;
            case 0x94: _memo[_memo.Count] = Top(); break;
            case (byte)'g': Push(_memo[long.Parse(ReadLine(), CultureInfo.InvariantCulture)]); break;
            case (byte)'h': Push(_memo[_in.ReadByte()]); break;
            case (byte)'j': Push(_memo[_in.ReadUInt32()]); break;
            default:
                throw new InvalidDataException($"unsupported pickle opcode 0x{op:x2} at byte {_in.BaseStream.Position - 1}");
        }
    }

    private static void Build(object? state, object? target)
    {
        // OrderedDict's __reduce__ passes its instance __dict__ (a state dict's _metadata) as the BUILD state.
        if (target is not PickleDict dict)
            throw new InvalidDataException($"BUILD on a {target?.GetType().Name ?? "None"}: only dicts take attributes in a state dict");
        if (state is object?[] { Length: 2 } pair) state = pair[0];
        if (state is PickleDict attributes)
            foreach (var (key, value) in attributes.Entries)
                dict.Attributes[key.ToString()!] = value;
        else if (state is not null)
            throw new InvalidDataException($"BUILD with a {state.GetType().Name} state on a dict");
    }

    private static PickleGlobal AsGlobal(object? value, string opcode) =>
        value as PickleGlobal ?? throw new InvalidDataException($"{opcode} on a {value?.GetType().Name ?? "None"}, not a global");

    private static PickleDict AsDict(object? value) =>
        value as PickleDict ?? throw new InvalidDataException($"SETITEM on a {value?.GetType().Name ?? "None"}, not a dict");

    private static object Key(object? key) => key switch
    {
        null => throw new InvalidDataException("a dict key is None"),
        List<object?> => throw new InvalidDataException("a dict key is a list"),
        _ => key,
    };

    private static void SetItems(PickleDict dict, List<object?> items)
    {
        if (items.Count % 2 != 0) throw new InvalidDataException("SETITEMS with an odd number of items");
        for (int i = 0; i < items.Count; i += 2) dict.Set(Key(items[i]), items[i + 1]);
    }

    private void Push(object? value) => _stack.Add(value);

    private object? Top() => _stack.Count > 0 ? _stack[^1] : throw new InvalidDataException("the pickle stack is empty");

    private object? Pop()
    {
        var value = Top();
        _stack.RemoveAt(_stack.Count - 1);
        if (ReferenceEquals(value, Mark)) throw new InvalidDataException("a MARK where a value was expected");
        return value;
    }

    private List<object?> PopMark()
    {
        int mark = _stack.FindLastIndex(v => ReferenceEquals(v, Mark));
        if (mark < 0) throw new InvalidDataException("no MARK on the pickle stack");
        var items = _stack.GetRange(mark + 1, _stack.Count - mark - 1);
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private byte[] ReadExactly(int count)
    {
        var bytes = _in.ReadBytes(count);
        if (bytes.Length != count) throw new EndOfStreamException();
        return bytes;
    }

    private string ReadUtf8(int count) => Encoding.UTF8.GetString(ReadExactly(count));

    private string ReadLatin1(int count) => Encoding.Latin1.GetString(ReadExactly(count));

    private string ReadLine()
    {
        var bytes = new List<byte>();
        byte b;
        while ((b = _in.ReadByte()) != (byte)'\n') bytes.Add(b);
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private object ReadLong(int count)
    {
        var value = new BigInteger(ReadExactly(count), isUnsigned: false, isBigEndian: false);
        return value >= long.MinValue && value <= long.MaxValue ? (long)value : value;
    }

    private static object ParseIntLine(string text) => text switch
    {
        "00" => false,
        "01" => true,
        _ => ParseInteger(text),
    };

    private static object ParseInteger(string text)
    {
        var value = BigInteger.Parse(text, CultureInfo.InvariantCulture);
        return value >= long.MinValue && value <= long.MaxValue ? (long)value : value;
    }

    private static string UnquotePython2String(string text) =>
        text.Length >= 2 && (text[0] == '\'' || text[0] == '"') ? text[1..^1] : text;
}
