using System.CommandLine;

namespace GuidedDiffusion.Cli;

/// <summary>
/// Options spelled like the original's argparse flags (<c>--classifier_width</c>) with a kebab-case alias
/// (<c>--classifier-width</c>); defaults come from the config records, so they live in one place.
/// Booleans take the original's <c>--anneal_lr True</c> / <c>False</c> (any case); a bare flag means true.
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
        return option;
    }

    /// <summary>Whether the user typed the option (rather than getting its default).</summary>
    public static bool WasGiven(this ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

    /// <summary>Whether the user typed <c>--<paramref name="name"/></c> (snake_case) on <paramref name="command"/>.</summary>
    public static bool WasGiven(this ParseResult parse, Command command, string name) =>
        command.Options.Any(o => o.Name == "--" + name && parse.WasGiven(o));

}
