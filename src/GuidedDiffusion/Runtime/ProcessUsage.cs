namespace GuidedDiffusion.Runtime;

/// <summary>CPU time and page faults of this process so far (<c>getrusage(RUSAGE_SELF)</c>).</summary>
/// <param name="UserSeconds">CPU seconds in user mode, all threads.</param>
/// <param name="SystemSeconds">CPU seconds in the kernel (page faults land here), all threads.</param>
/// <param name="MinorFaults">Page faults served without I/O (fresh zeroed pages after mmap, mostly).</param>
/// <param name="MajorFaults">Page faults that needed I/O.</param>
public readonly record struct ProcessUsage(double UserSeconds, double SystemSeconds, long MinorFaults, long MajorFaults)
{
    /// <summary>Reads the counters now; zeros where getrusage is unavailable (not Linux).</summary>
    public static ProcessUsage Now()
    {
        if (!OperatingSystem.IsLinux() || NativeMethods.GetRUsage(NativeMethods.RUSAGE_SELF, out var u) != 0) return default;
        return new ProcessUsage(u.UserSeconds + u.UserMicroseconds / 1e6, u.SystemSeconds + u.SystemMicroseconds / 1e6, u.MinorFaults, u.MajorFaults);
    }

    /// <summary>The counters accumulated between <paramref name="start"/> and this reading.</summary>
    public ProcessUsage Since(ProcessUsage start) =>
        new(UserSeconds - start.UserSeconds, SystemSeconds - start.SystemSeconds, MinorFaults - start.MinorFaults, MajorFaults - start.MajorFaults);
}
