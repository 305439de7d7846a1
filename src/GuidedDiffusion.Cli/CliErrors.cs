using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data;

namespace GuidedDiffusion.Cli;

/// <summary>
/// Turns the library's user-facing exceptions into one clear line on stderr and exit code 2: bad flags, data,
/// checkpoints, and every I/O failure (a run folder that cannot be written, a full disk), whose messages name
/// the path and the operating system's reason. The library names settings (<c>log_dir</c>); the line spells
/// them as flags (<c>--log_dir</c>).
/// </summary>
internal static class CliErrors
{
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
            Console.Error.WriteLine($"error: {Describe(e)}");
            return 2;
        }
    }

    /// <summary>The message of <paramref name="e"/> with the settings it names spelled as this command line's flags.</summary>
    public static string Describe(Exception e) => SettingText.MessageOf(e, Flag);

    /// <summary>The flag of a setting: its snake_case name after <c>--</c> (each table declares its flags by setting name).</summary>
    public static string Flag(string setting) => "--" + setting;
}
