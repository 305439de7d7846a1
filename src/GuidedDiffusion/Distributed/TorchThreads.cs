using TorchSharp;

namespace GuidedDiffusion.Distributed;

/// <summary>
/// Sizes torch's intra-op thread pool to the cores this rank may use. Under mpirun, Open MPI binds each
/// rank to its own core(s) by default; torch would otherwise start one thread per core of the machine
/// on every rank, and those threads would all compete for the rank's one core.
/// </summary>
public static class TorchThreads
{
    /// <summary>The number of cores this rank should use for compute threads (at least 1).</summary>
    /// <param name="communicator">Supplies how many ranks share this machine.</param>
    public static int CoresForThisRank(ICommunicator communicator)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        var online = OnlineCpuCount();
        var allowed = AffinityCpuCount() ?? online;
        return CoresForRank(allowed, online, communicator.LocalSize);
    }

    /// <summary>
    /// The policy behind <see cref="CoresForThisRank"/>: a rank bound to a subset of the machine's cores
    /// (mpirun's default binding) gets exactly that subset; a rank free to run anywhere (<c>--bind-to none</c>)
    /// gets an equal share of the cores with the other ranks on the machine.
    /// </summary>
    /// <param name="allowedCpus">CPUs in this process's affinity mask.</param>
    /// <param name="onlineCpus">CPUs online on the machine.</param>
    /// <param name="localRanks">Ranks on this machine.</param>
    public static int CoresForRank(int allowedCpus, int onlineCpus, int localRanks)
    {
        var share = allowedCpus < onlineCpus ? allowedCpus : allowedCpus / Math.Max(1, localRanks);
        return Math.Max(1, share);
    }

    /// <summary>Sets torch's thread count to <see cref="CoresForThisRank"/> and returns it.</summary>
    public static int Configure(ICommunicator communicator)
    {
        var threads = CoresForThisRank(communicator);
        torch.set_num_threads(threads);
        return threads;
    }

    private static unsafe int? AffinityCpuCount()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }
        // 1024 CPUs (glibc's cpu_set_t) is enough for any machine we run on.
        const int maskBytes = 128;
        var mask = stackalloc byte[maskBytes];
        if (Posix.NativeMethods.SchedGetAffinity(0, maskBytes, mask) != 0)
        {
            return null;
        }
        var count = 0;
        for (var i = 0; i < maskBytes; i++)
        {
            count += System.Numerics.BitOperations.PopCount(mask[i]);
        }
        return count > 0 ? count : null;
    }

    private static int OnlineCpuCount()
    {
        if (OperatingSystem.IsLinux())
        {
            var online = Posix.NativeMethods.SysConf(Posix.NativeMethods.SC_NPROCESSORS_ONLN);
            if (online > 0)
            {
                return (int)online;
            }
        }
        // .NET's count already honours the affinity mask, so it is a lower bound of the machine's size.
        return Environment.ProcessorCount;
    }
}
