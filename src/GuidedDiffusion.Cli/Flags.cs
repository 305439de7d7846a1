using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace GuidedDiffusion.Cli;

/// <summary>
/// Options spelled like the original's argparse flags (<c>--classifier_width</c>) with a kebab-case alias
/// (<c>--classifier-width</c>); defaults come from the config records, so they live in one place.
/// </summary>
internal static class Flags
{
    /// <summary>An option named <c>--<paramref name="name"/></c> with its kebab alias and default.</summary>
    public static Option<T> Create<T>(string name, T defaultValue, string description)
    {
        var kebab = "--" + name.Replace('_', '-');
        var option = kebab == "--" + name ? new Option<T>("--" + name) : new Option<T>("--" + name, kebab);
        option.Description = description;
        option.DefaultValueFactory = _ => defaultValue;
        if (typeof(T) == typeof(bool))
        {
            // argparse's str2bool: "--anneal_lr True", "--noised false", "--anneal_lr 1"; a bare flag means true.
            option.Arity = ArgumentArity.ZeroOrOne;
            option.CustomParser = result => (T)(object)ParseBool(result);
        }
        return option;
    }

    /// <summary>Whether the user typed the option (rather than getting its default).</summary>
    public static bool WasGiven(this ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

    private static bool ParseBool(ArgumentResult result)
    {
        if (result.Tokens.Count == 0) return true;
        var text = result.Tokens[0].Value.ToLowerInvariant();
        switch (text)
        {
            case "yes" or "true" or "t" or "y" or "1": return true;
            case "no" or "false" or "f" or "n" or "0": return false;
            default:
                result.AddError($"'{result.Tokens[0].Value}' is not a boolean for {((OptionResult)result.Parent!).Option.Name}; allowed: True/False, yes/no, 1/0.");
                return false;
        }
    }

    /// <summary>Formats a double the way a user would type it.</summary>
    public static string Show(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
