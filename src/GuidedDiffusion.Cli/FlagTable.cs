using System.CommandLine;
using System.Runtime.CompilerServices;

namespace GuidedDiffusion.Cli;

/// <summary>One flag of a <see cref="FlagTable{TRecord}"/>, whatever its value type (what tests and the error mapping see).</summary>
internal interface IFlag
{
    /// <summary>The snake_case name, as the original's argparse spells it (the kebab alias is derived).</summary>
    string Name { get; }

    /// <summary>
    /// The library's name of the setting this flag sets (<see cref="ConfigurationException.Setting"/>, the names marked
    /// in messages): usually <see cref="Name"/>; a classifier's channel_mult is <c>classifier_channel_mult</c>, since a
    /// command may also have the diffusion model's. Each command spells a setting as the option it made from the flag.
    /// </summary>
    string Setting { get; }

    /// <summary>The help text.</summary>
    string Help { get; }

    /// <summary>The options record the flag binds to.</summary>
    Type Record { get; }

    /// <summary>The shared group's flag this one binds (null: declared for this record alone).</summary>
    SharedFlag? Shared { get; }

    /// <summary>The record's value of this flag in <paramref name="record"/> (boxed).</summary>
    object? ValueIn(object record);

    /// <summary>The value an option made from this flag gives when the user does not type it.</summary>
    object? DefaultOf(Option option);
}

/// <summary>
/// One flag bound to a property of <typeparamref name="TRecord"/>: declared once in a table, it makes the
/// <see cref="Option"/> of each command that uses it (default read from that command's defaults record) and writes
/// the parsed value into the record.
/// </summary>
internal abstract class Flag<TRecord> : IFlag
{
    private readonly List<Flag<TRecord>> _demoNeedsUntyped = [];

    protected Flag(string name, string help, string setting) => (Name, Help, Setting) = (name, help, setting);

    public string Name { get; }
    public string Setting { get; }
    public string Help { get; }
    public Type Record => typeof(TRecord);
    public SharedFlag? Shared { get; private set; }

    /// <summary>Marks this flag as a binding of <paramref name="shared"/>.</summary>
    internal Flag<TRecord> Binding(SharedFlag shared)
    {
        Shared = shared;
        return this;
    }

    /// <summary>Flags that must all be untyped for the demo's value of this one to apply (e.g. overwrite only in the demo's own folder).</summary>
    public IReadOnlyList<Flag<TRecord>> DemoNeedsUntyped => _demoNeedsUntyped;

    /// <summary>The demo's value of this flag applies only while none of <paramref name="flags"/> was typed.</summary>
    public Flag<TRecord> DemoOnlyWithout(params Flag<TRecord>[] flags)
    {
        _demoNeedsUntyped.AddRange(flags);
        return this;
    }

    public abstract Option CreateOption(string name, TRecord defaults);
    public abstract TRecord Bind(TRecord record, ParseResult parse, Option option);
    public abstract TRecord CopyFrom(TRecord target, TRecord source);
    public abstract object? ValueIn(object record);
    public abstract object? DefaultOf(Option option);
}

/// <summary>A flag whose record value <typeparamref name="T"/> is spelled on the command line as <typeparamref name="TText"/>.</summary>
internal sealed class Flag<TRecord, T, TText>(
    string name, string help, string setting, Func<TRecord, T> get, Func<TRecord, T, TRecord> set, Func<TText, T> fromText, Func<T, TText> toText)
    : Flag<TRecord>(name, help, setting)
{
    public override Option CreateOption(string name, TRecord defaults) => Flags.Create(name, toText(get(defaults)), Help);

    public override TRecord Bind(TRecord record, ParseResult parse, Option option) =>
        set(record, fromText(parse.GetValue((Option<TText>)option)!));

    public override TRecord CopyFrom(TRecord target, TRecord source) => set(target, get(source));

    public override object? ValueIn(object record) => get((TRecord)record);

    public override object? DefaultOf(Option option) =>
        fromText((TText)((Option<TText>)option).DefaultValueFactory!(null!)!);
}

/// <summary>
/// The flags of one options record, each declared once (name, help, getter and <c>with</c>-setter). From it come
/// the options a command shows (<see cref="AddTo"/>), and on that command (<see cref="FlagSet{TRecord}"/>) the
/// binding into the record, whether a flag was typed, and the demo's values for the flags that were not.
/// </summary>
internal sealed class FlagTable<TRecord>
{
    private readonly List<Flag<TRecord>> _flags = [];

    /// <summary>The flags in declaration order.</summary>
    public IReadOnlyList<Flag<TRecord>> Flags => _flags;

    /// <summary>A flag whose command-line type is the record's.</summary>
    /// <param name="name">The snake_case flag name.</param>
    /// <param name="help">The help text.</param>
    /// <param name="get">Reads the flag's value from a record.</param>
    /// <param name="set">A copy of the record with the value (<c>with</c>).</param>
    /// <param name="setting">The library's name of the setting (default: <paramref name="name"/>); see <see cref="IFlag.Setting"/>.</param>
    public Flag<TRecord> Add<T>(string name, string help, Func<TRecord, T> get, Func<TRecord, T, TRecord> set, string? setting = null) =>
        Add<T, T>(name, help, get, set, v => v, v => v, setting);

    /// <summary>A flag spelled as <typeparamref name="TText"/> on the command line and held as <typeparamref name="T"/> (an enum, a list, "unset").</summary>
    /// <param name="name">The snake_case flag name.</param>
    /// <param name="help">The help text.</param>
    /// <param name="get">Reads the flag's value from a record (the default shown comes from the command's defaults record).</param>
    /// <param name="set">A copy of the record with the value (<c>with</c>).</param>
    /// <param name="fromText">Parses the typed text; throws <see cref="ConfigurationException"/> for a bad value.</param>
    /// <param name="toText">Spells a record value (the default shown in help).</param>
    /// <param name="setting">The library's name of the setting (default: <paramref name="name"/>); see <see cref="IFlag.Setting"/>.</param>
    public Flag<TRecord> Add<T, TText>(string name, string help, Func<TRecord, T> get, Func<TRecord, T, TRecord> set,
        Func<TText, T> fromText, Func<T, TText> toText, string? setting = null)
    {
        if (_flags.Any(f => f.Name == name)) throw new InvalidOperationException($"flag {name} is declared twice in the {typeof(TRecord).Name} table.");
        var flag = new Flag<TRecord, T, TText>(name, help, setting ?? name, get, set, fromText, toText);
        _flags.Add(flag);
        return flag;
    }

    /// <summary>A shared group's flag bound to this record's property, spelled as the record's type.</summary>
    /// <param name="flag">The group's flag (name and help).</param>
    /// <param name="get">Reads the flag's value from a record.</param>
    /// <param name="set">A copy of the record with the value (<c>with</c>).</param>
    /// <param name="help">This command's help, only where the flag means something else here (e.g. another default).</param>
    public Flag<TRecord> Add<T>(SharedFlag flag, Func<TRecord, T> get, Func<TRecord, T, TRecord> set, string? help = null) =>
        Add(flag.Name, help ?? flag.Help, get, set).Binding(flag);

    /// <summary>A shared group's typed flag (an enum) bound to this record's property, spelled as the group spells it.</summary>
    /// <param name="flag">The group's flag (name, help and spelling).</param>
    /// <param name="get">Reads the flag's value from a record.</param>
    /// <param name="set">A copy of the record with the value (<c>with</c>).</param>
    /// <param name="help">This command's help, only where the flag means something else here.</param>
    public Flag<TRecord> Add<T, TText>(SharedFlag<T, TText> flag, Func<TRecord, T> get, Func<TRecord, T, TRecord> set, string? help = null) =>
        Add(flag.Name, help ?? flag.Help, get, set, flag.FromText, flag.ToText).Binding(flag);

    /// <summary>A shared group's flag held as <typeparamref name="T"/> by this record and spelled as <typeparamref name="TText"/> (e.g. an unset count).</summary>
    /// <param name="flag">The group's flag (name and help).</param>
    /// <param name="get">Reads the flag's value from a record.</param>
    /// <param name="set">A copy of the record with the value (<c>with</c>).</param>
    /// <param name="fromText">Parses the typed text.</param>
    /// <param name="toText">Spells a record value.</param>
    /// <param name="help">This command's help, only where the flag means something else here.</param>
    public Flag<TRecord> Add<T, TText>(SharedFlag flag, Func<TRecord, T> get, Func<TRecord, T, TRecord> set, Func<TText, T> fromText, Func<T, TText> toText,
        string? help = null) =>
        Add(flag.Name, help ?? flag.Help, get, set, fromText, toText).Binding(flag);

    /// <summary>
    /// Adds the flags <paramref name="include"/> selects (all by default) to <paramref name="command"/>, with the
    /// defaults of <paramref name="defaults"/>; <paramref name="rename"/> gives a flag another name on this command.
    /// </summary>
    public FlagSet<TRecord> AddTo(Command command, TRecord defaults, Func<Flag<TRecord>, bool>? include = null,
        Func<Flag<TRecord>, string?>? rename = null)
    {
        var options = new List<(Flag<TRecord>, Option)>();
        foreach (var flag in _flags.Where(include ?? (_ => true)))
        {
            var option = flag.CreateOption(rename?.Invoke(flag) ?? flag.Name, defaults);
            command.Options.Add(option);
            options.Add((flag, option));
        }
        return new FlagSet<TRecord>(defaults, options);
    }
}

/// <summary>
/// A flag of a shared group (data, seed, output folder, ...), declared once for every command that takes it: its name
/// and help. Each command's table binds it to its own record's property (<see cref="FlagTable{TRecord}.Add{T}(SharedFlag, Func{TRecord, T}, Func{TRecord, T, TRecord}, string?)"/>),
/// so the option a user sees is the same wherever it appears.
/// </summary>
/// <param name="name">The snake_case flag name.</param>
/// <param name="help">The help text.</param>
internal class SharedFlag(string name, string help)
{
    /// <summary>The snake_case flag name.</summary>
    public string Name { get; } = name;

    /// <summary>The help text every command shows unless the flag means something else there.</summary>
    public string Help { get; } = help;
}

/// <summary>A shared flag whose value <typeparamref name="T"/> (an enum) is spelled as <typeparamref name="TText"/> the same way everywhere.</summary>
/// <param name="name">The snake_case flag name.</param>
/// <param name="help">The help text.</param>
/// <param name="fromText">Parses the typed text; throws <see cref="ConfigurationException"/> for a bad value.</param>
/// <param name="toText">Spells a value (the default shown in help).</param>
internal sealed class SharedFlag<T, TText>(string name, string help, Func<TText, T> fromText, Func<T, TText> toText) : SharedFlag(name, help)
{
    /// <summary>Parses the typed text.</summary>
    public Func<TText, T> FromText { get; } = fromText;

    /// <summary>Spells a value.</summary>
    public Func<T, TText> ToText { get; } = toText;
}

/// <summary>A table's flags on one command, whatever the record type (what tests walk).</summary>
internal interface IFlagSet
{
    /// <summary>The record whose values the untyped flags keep.</summary>
    object DefaultRecord { get; }

    /// <summary>The record bound from <paramref name="parse"/>.</summary>
    object BindRecord(ParseResult parse);
}

/// <summary>Finds the flag and the flag set behind an option, whatever the record type of its table.</summary>
internal static class FlagOwners
{
    private static readonly ConditionalWeakTable<Option, Tuple<IFlag, IFlagSet>> Owners = new();

    public static void Add(Option option, IFlag flag, IFlagSet set) => Owners.AddOrUpdate(option, Tuple.Create(flag, set));

    /// <summary>The table flag <paramref name="option"/> was made from, or null when it was declared outside any table.</summary>
    public static IFlag? Of(Option option) => Owners.TryGetValue(option, out var owner) ? owner.Item1 : null;

    /// <summary>The flag set (table on a command) <paramref name="option"/> belongs to, or null.</summary>
    public static IFlagSet? SetOf(Option option) => Owners.TryGetValue(option, out var owner) ? owner.Item2 : null;
}

/// <summary>A table's flags on one command: binding, "was it typed" and the demo overrides.</summary>
internal sealed class FlagSet<TRecord> : IFlagSet
{
    private readonly IReadOnlyList<(Flag<TRecord> Flag, Option Option)> _options;

    public FlagSet(TRecord defaults, IReadOnlyList<(Flag<TRecord>, Option)> options)
    {
        Defaults = defaults;
        _options = options;
        foreach (var (flag, option) in options) FlagOwners.Add(option, flag, this);
    }

    /// <summary>The record whose values the untyped flags keep (and help shows).</summary>
    public TRecord Defaults { get; }

    object IFlagSet.DefaultRecord => Defaults!;

    object IFlagSet.BindRecord(ParseResult parse) => Bind(parse)!;

    /// <summary>The options, in declaration order.</summary>
    public IEnumerable<Option> Options => _options.Select(o => o.Option);

    /// <summary><see cref="Defaults"/> with every flag's parsed value.</summary>
    /// <exception cref="ConfigurationException">A value its flag cannot spell (an unknown enum name, a bad list).</exception>
    public TRecord Bind(ParseResult parse) => Bind(parse, Defaults);

    /// <summary><paramref name="record"/> with every flag's parsed value (typed or its default).</summary>
    /// <exception cref="ConfigurationException">A value its flag cannot spell (an unknown enum name, a bad list).</exception>
    public TRecord Bind(ParseResult parse, TRecord record) =>
        _options.Aggregate(record, (bound, o) => o.Flag.Bind(bound, parse, o.Option));

    /// <summary>Whether the user typed <paramref name="flag"/>.</summary>
    public bool Given(ParseResult parse, Flag<TRecord> flag) => _options.Any(o => o.Flag == flag && parse.WasGiven(o.Option));

    /// <summary>The settings (<see cref="IFlag.Setting"/>) of the flags the user typed, except <paramref name="except"/>.</summary>
    public IReadOnlySet<string> GivenSettings(ParseResult parse, params Flag<TRecord>[] except) =>
        _options.Where(o => !except.Contains(o.Flag) && parse.WasGiven(o.Option)).Select(o => o.Flag.Setting).ToHashSet();

    /// <summary>Whether the user typed any of these flags except <paramref name="except"/>.</summary>
    public bool AnyGiven(ParseResult parse, params Flag<TRecord>[] except) =>
        _options.Any(o => !except.Contains(o.Flag) && parse.WasGiven(o.Option));

    /// <summary>
    /// <paramref name="bound"/> with the demo's values (<paramref name="demo"/>) for every flag the user did not type
    /// (and whose <see cref="Flag{TRecord}.DemoNeedsUntyped"/> flags were not typed either): typed flags keep their values.
    /// </summary>
    public TRecord WithDemo(ParseResult parse, TRecord bound, TRecord demo) =>
        _options.Where(o => !parse.WasGiven(o.Option) && !o.Flag.DemoNeedsUntyped.Any(f => Given(parse, f)))
            .Aggregate(bound, (record, o) => o.Flag.CopyFrom(record, demo));
}
