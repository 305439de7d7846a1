using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion;

/// <summary>
/// Where the jobs compute. One rule holds throughout the library: every tensor is created on a device named in
/// code (the job's device, or the CPU on purpose), never on torch's default device; models are built on the CPU
/// (so a seed gives the same initial weights everywhere), moved to the job's device once, and values are read back
/// through the CPU. Tests make torch's default device <c>meta</c> to catch any tensor that breaks the rule.
/// </summary>
public static class ComputeDevice
{
    /// <summary>
    /// Parses a device setting: <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>. A CUDA device must be present in this
    /// process, which needs the CUDA build of libtorch (<c>-p:TorchBackend=cuda</c>) and an NVIDIA GPU.
    /// </summary>
    /// <param name="name">The setting's value.</param>
    /// <exception cref="ConfigurationException">An unknown name, or a CUDA device that this process cannot use.</exception>
    public static Device Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name == "cpu") return CPU;
        if (name != "cuda" && !(name.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(name.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out _)))
            throw new ConfigurationException("device", $"unknown device '{name}'; allowed: cpu, cuda, cuda:N (N = GPU index).");
        if (!cuda.is_available())
            throw new ConfigurationException("device",
                $"{name} is not available: this build uses the CPU libtorch or no NVIDIA GPU is visible. Build with -p:TorchBackend=cuda on a machine with an NVIDIA GPU (see README, GPU), or use cpu.");
        var device = torch.device(name);
        if (device.index >= cuda.device_count())
            throw new ConfigurationException("device", $"{name}: this machine has {cuda.device_count()} CUDA device(s), numbered from 0.");
        return device;
    }

    /// <summary>
    /// Runs <paramref name="work"/> with torch's default device set to the CPU, whatever it was: modules build their
    /// parameters on the default device, and so do TorchSharp.PyBridge's readers and writers for the tensors they make,
    /// while weights must be initialised, and checkpoint files read and written, on the CPU.
    /// </summary>
    /// <param name="work">Builds or loads a module, or reads or writes a checkpoint file.</param>
    public static T OnCpu<T>(Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var previous = get_default_device();
        if (previous.type == DeviceType.CPU) return work();
        set_default_device(CPU);
        try { return work(); }
        finally { set_default_device(previous); }
    }

    /// <inheritdoc cref="OnCpu{T}(Func{T})"/>
    public static void OnCpu(Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        OnCpu(() => { work(); return true; });
    }

    /// <summary>
    /// Whether <paramref name="tensor"/> is on <paramref name="device"/>; a device without an index (<c>cuda</c>) stands for
    /// the current one, GPU 0 unless changed.
    /// </summary>
    public static bool IsOn(Tensor tensor, Device device)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ArgumentNullException.ThrowIfNull(device);
        return tensor.device_type == device.type && Math.Max(tensor.device_index, 0) == Math.Max(device.index, 0);
    }

    /// <summary>The values of <paramref name="tensor"/> as a managed array, copied through the CPU (a no-op there).</summary>
    /// <param name="tensor">Any tensor; its elements in row-major order.</param>
    public static T[] ToArray<T>(Tensor tensor) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.device_type == DeviceType.CPU) return tensor.data<T>().ToArray();
        using var host = tensor.cpu();
        return host.data<T>().ToArray();
    }
}
