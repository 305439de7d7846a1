using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data;

namespace GuidedDiffusion.Cli;

/// <summary>
/// Turns the library's user-facing exceptions into one clear line on stderr and exit code 2: bad flags, data,
/// checkpoints, and every I/O failure (a run folder that cannot be written, a full disk), whose messages name
/// the path and the operating system's reason.
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
                                       or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}
