using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace GuidedDiffusion.Cli;

/// <summary>
/// Options spelled like the original's argparse flags (<c>--classifier_width</c>) with a kebab-case alias
/// (<c>--classifier-width</c>). Commands make them through a <see cref="FlagTable{TRecord}"/>, which reads the
/// defaults from the options records, so they live in one place.
/// Booleans take the original's <c>--anneal_lr True</c> / <c>False</c> (any case); a bare flag means true.
/// A flag given twice takes its last value, as argparse does (shell scripts override a flag set that way).
/// </summary>
internal static class Flags
{
    /// <summary>The spellings a boolean flag accepts (compared case-insensitively), as named in its error.</summary>
    public const string BoolSpellings = "True or False (any case), or the bare flag for True";

    /// <summary>An option named <c>--<paramref name="name"/></c> with its kebab alias and default.</summary>
    public static Option<T> Create<T>(string name, T defaultValue, string description)
    {
        var kebab = "--" + name.Replace('_', '-');
        var option = kebab == "--" + name ? new Option<T>("--" + name) : new Option<T>("--" + name, kebab);
        option.Description = description;
        option.DefaultValueFactory = _ => defaultValue;
        // Repeats are collected (one value per occurrence) and the last one wins, like argparse's "store".
        option.Arity = typeof(T) == typeof(bool) ? ArgumentArity.ZeroOrMore : ArgumentArity.OneOrMore;
        option.CustomParser = result => ParseLast<T>(result, "--" + name, defaultValue);
        return option;
    }

    private static T ParseLast<T>(ArgumentResult result, string flag, T defaultValue)
    {
        if (result.Tokens.Count == 0)
            return typeof(T) == typeof(bool) ? (T)(object)true : defaultValue;
        var text = result.Tokens[^1].Value;
        if (TryConvert(text, typeof(T), out var value)) return (T)value!;
        result.AddError(typeof(T) == typeof(bool)
            ? $"{flag} expects {BoolSpellings}; got '{text}'."
            : $"{flag} expects {Describe(typeof(T))}; got '{text}'.");
        return defaultValue;
    }

    private static bool TryConvert(string text, Type type, out object? value)
    {
        // An optional setting (double? and the like) parses as its underlying type.
        type = Nullable.GetUnderlyingType(type) ?? type;
        var c = CultureInfo.InvariantCulture;
        value = null;
        if (type == typeof(string)) value = text;
        else if (type == typeof(bool) && bool.TryParse(text, out var b)) value = b;
        else if (type == typeof(int) && int.TryParse(text, NumberStyles.Integer, c, out var i)) value = i;
        else if (type == typeof(long) && long.TryParse(text, NumberStyles.Integer, c, out var l)) value = l;
        else if (type == typeof(double) && double.TryParse(text, NumberStyles.Float, c, out var d)) value = d;
        else if (type == typeof(float) && float.TryParse(text, NumberStyles.Float, c, out var f)) value = f;
        else if (type != typeof(bool) && type != typeof(int) && type != typeof(long) && type != typeof(double) && type != typeof(float))
        {
            try { value = Convert.ChangeType(text, type, c); }
            catch (Exception e) when (e is FormatException or InvalidCastException or OverflowException) { value = null; }
        }
        return value is not null;
    }

    private static string Describe(Type type) =>
        (type = Nullable.GetUnderlyingType(type) ?? type) == typeof(int) || type == typeof(long) ? "an integer" : type == typeof(string) ? "a value" : "a number";

    /// <summary>
    /// The error for <c>--anneal_lr yes</c>: the parser leaves a word that is no boolean unmatched after a
    /// boolean flag ("Unrecognized argument 'yes'"); this names the flag and its spellings instead. Null otherwise.
    /// </summary>
    public static string? BoolValueError(ParseResult parse, IReadOnlyList<string> args)
    {
        var unmatched = parse.UnmatchedTokens.ToHashSet(StringComparer.Ordinal);
        var options = parse.CommandResult.Command.Options;
        for (int i = 0; i + 1 < args.Count; i++)
        {
            if (!unmatched.Contains(args[i + 1]) || args[i + 1].StartsWith('-')) continue;
            var option = options.FirstOrDefault(o => o.ValueType == typeof(bool) && (o.Name == args[i] || o.Aliases.Contains(args[i])));
            if (option is not null) return $"{option.Name} expects {BoolSpellings}; got '{args[i + 1]}'.";
        }
        return null;
    }

    /// <summary>Whether the user typed the option (rather than getting its default).</summary>
    public static bool WasGiven(this ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };
}
