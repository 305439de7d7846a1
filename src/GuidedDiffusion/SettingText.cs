using System.Text.RegularExpressions;

namespace GuidedDiffusion;

/// <summary>
/// Names of settings inside the library's messages, without a command-line spelling: a message marks each setting
/// it mentions with <see cref="Ref"/>; <see cref="Exception.Message"/> shows the bare name (<c>allow_slow_bf16</c>)
/// and a front end renders its own spelling (the CLI: <c>--allow_slow_bf16</c>) from the marked text that the
/// exception carries (<see cref="MessageOf"/>). Log and warning lines mark settings too and are spelled by the
/// job's <see cref="RunContext.Show"/>.
/// </summary>
public static partial class SettingText
{
    // Private-use code points: they never occur in paths or values, so a marked name cannot be confused with text.
    private const char Open = '\uE000', Close = '\uE001';
    private const string DataKey = "GuidedDiffusion.SettingText";

    /// <summary>A reference to <paramref name="setting"/> (snake_case, e.g. <c>log_dir</c>) inside a message.</summary>
    public static string Ref(string setting) => $"{Open}{setting}{Close}";

    /// <summary><paramref name="text"/> with every setting reference spelled by <paramref name="spell"/>.</summary>
    public static string Render(string text, Func<string, string> spell)
    {
        ArgumentNullException.ThrowIfNull(spell);
        return Marked().Replace(text, m => spell(m.Groups[1].Value));
    }

    /// <summary><paramref name="text"/> with the bare setting names (what the library's messages show).</summary>
    public static string Plain(string text) => Render(text, name => name);

    /// <summary>The message of <paramref name="exception"/>, its settings spelled by <paramref name="spell"/> (its plain message when it marks none).</summary>
    public static string MessageOf(Exception exception, Func<string, string> spell)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception.Data[DataKey] is string marked ? Render(marked, spell) : exception.Message;
    }

    /// <summary>Records the marked message behind <paramref name="exception"/>'s plain one; returns the exception.</summary>
    public static T WithMarkedMessage<T>(this T exception, string marked) where T : Exception
    {
        ArgumentNullException.ThrowIfNull(exception);
        exception.Data[DataKey] = marked;
        return exception;
    }

    [GeneratedRegex("\uE000([^\uE001]*)\uE001")]
    private static partial Regex Marked();
}
