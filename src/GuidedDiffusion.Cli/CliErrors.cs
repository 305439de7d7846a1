using System.CommandLine;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data;

namespace GuidedDiffusion.Cli;

/// <summary>
/// Turns the library's user-facing exceptions into one clear line on stderr and exit code 2: bad flags, data,
/// checkpoints, and every I/O failure (a run folder that cannot be written, a full disk), whose messages name
/// the path and the operating system's reason. The library names settings (<c>log_dir</c>,
/// <c>classifier_channel_mult</c>); the line spells each as the flag the running command has for it
/// (<c>--log_dir</c>; <c>--channel_mult</c> on classifier-train, <c>--classifier_channel_mult</c> on classifier-sample).
/// </summary>
internal static class CliErrors
{
    // Per flow (a test may run several commands at once in one process); Main sets it once.
    private static readonly AsyncLocal<Func<string, string>?> CommandSpelling = new();

    /// <summary>Where the error line goes: <see cref="CliConsole.Error"/>.</summary>
    public static TextWriter Error => CliConsole.Error;

    /// <summary>Spells settings as <paramref name="command"/>'s options from now on in this flow (see <see cref="SpellingFor"/>).</summary>
    public static void UseCommand(Command command) => CommandSpelling.Value = SpellingFor(command);

    /// <summary>
    /// How <paramref name="command"/> spells a setting: the option it made from the table flag that sets it
    /// (<see cref="IFlag.Setting"/>), e.g. classifier_num_classes as <c>--num_classes</c> on classify and as
    /// <c>--classifier_num_classes</c> on classifier-sample; a setting it has no option for as <c>--setting</c>.
    /// </summary>
    public static Func<string, string> SpellingFor(Command command)
    {
        var spellings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var option in command.Options)
            if (FlagOwners.Of(option) is { } flag)
                spellings.TryAdd(flag.Setting, option.Name);
        return setting => spellings.TryGetValue(setting, out var spelled) ? spelled : Flag(setting);
    }

    public static int Guard(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (e is ConfigurationException or CheckpointException or DatasetException
                                       or Data.Decoding.ImageDecodeException or FileNotFoundException or DirectoryNotFoundException
                                       or InvalidDataException or Distributed.MpiUnavailableException
                                       or IOException or UnauthorizedAccessException
                                       or Training.NonFiniteTrainingException or Models.KernelCheckException)
        {
            Error.WriteLine($"error: {Describe(e)}");
            return 2;
        }
    }

    /// <summary>The message of <paramref name="e"/> with the settings it names spelled as the running command's flags.</summary>
    public static string Describe(Exception e) => SettingText.MessageOf(e, Spell);

    /// <summary>The running command's flag for <paramref name="setting"/> (<see cref="Flag"/> before a command is chosen).</summary>
    public static string Spell(string setting) => (CommandSpelling.Value ?? Flag)(setting);

    /// <summary>The default flag of a setting: its snake_case name after <c>--</c>.</summary>
    public static string Flag(string setting) => "--" + setting;
}
