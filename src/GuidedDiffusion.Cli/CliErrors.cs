using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data;

namespace GuidedDiffusion.Cli;

/// <summary>Turns the library's user-facing exceptions into one clear line on stderr and exit code 2.</summary>
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
                                       or InvalidDataException or Distributed.MpiUnavailableException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}
