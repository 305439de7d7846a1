using static TorchSharp.torch;

namespace GuidedDiffusion.Cli;

/// <summary>--device handling.</summary>
internal static class Devices
{
    /// <summary>Checks that <paramref name="name"/> is usable; only cpu runs with the default (CPU) libtorch.</summary>
    public static void Select(string name)
    {
        switch (name)
        {
            case "cpu":
                return;
            case "cuda":
                if (!cuda.is_available())
                    throw new ConfigurationException("device", "cuda is not available: build with -p:TorchBackend=cuda on a machine with an NVIDIA GPU (see README), or use --device cpu.");
                throw new ConfigurationException("device", "training on cuda is not wired up yet in this version; use --device cpu.");
            default:
                throw new ConfigurationException("device", $"unknown device '{name}'; allowed: cpu, cuda.");
        }
    }
}
