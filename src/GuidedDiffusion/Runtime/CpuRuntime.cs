namespace GuidedDiffusion.Runtime;

/// <summary>What <see cref="CpuRuntime.Plan"/> decided for this process.</summary>
/// <param name="Environment">Variables to set for the native libraries (OpenMP reads them when it loads).</param>
/// <param name="DisableMmap">Serve every block from glibc's heap (<c>M_MMAP_MAX</c> 0).</param>
/// <param name="KeepFreedMemory">Never return free heap top to the OS (<c>M_TRIM_THRESHOLD</c> at its maximum).</param>
/// <param name="Notes">Why something was left alone (a user override, another allocator), for logs.</param>
public sealed record RuntimePlan(
    IReadOnlyList<KeyValuePair<string, string>> Environment, bool DisableMmap, bool KeepFreedMemory, IReadOnlyList<string> Notes);

/// <summary>
/// Process start-up settings that must be in place before libtorch starts: glibc's allocator and OpenMP's wait
/// policy. Call <see cref="Configure"/> first thing in <c>Main</c>, before any torch call.
/// </summary>
/// <remarks>
/// <para><b>Allocator.</b> glibc serves blocks above 32 MB (the attention matrices, activations of a batch) with a
/// fresh <c>mmap</c> and unmaps them on free, so every training step faults in hundreds of MB of new zeroed pages:
/// 28 % of the process's CPU time under <c>perf</c> on the reference classifier step. With mmap off and trimming
/// off, freed blocks are reused from the heap: the resident size reaches the step's peak once and then stays flat.
/// The cost is that memory freed after a peak stays with the process (for a trainer that repeats the same step,
/// that is the working set anyway).</para>
/// <para><b>OpenMP wait policy.</b> libgomp's default spins idle workers for ~300,000 iterations before sleeping.
/// Between libtorch's thousands of small parallel regions that spinning burns the cores another process (a data
/// loader, another job) needs, and when a worker is descheduled every region waits for it: 1.4–1.5× slower steps
/// with one competing job. <c>PASSIVE</c> costs 3–5 % on an idle machine. libgomp reads the variable once, when
/// it is loaded (with libtorch), so it must be in the native environment before the first torch call; .NET's
/// <see cref="System.Environment.SetEnvironmentVariable(string, string)"/> alone does not reach it on Unix.</para>
/// <para>Every setting yields to the user: an <c>OMP_WAIT_POLICY</c> or <c>GOMP_SPINCOUNT</c> in the environment,
/// <c>MALLOC_MMAP_MAX_</c>, <c>MALLOC_TRIM_THRESHOLD_</c> or their <c>GLIBC_TUNABLES</c> spellings, or another
/// allocator in <c>LD_PRELOAD</c> (jemalloc, tcmalloc, mimalloc) leave the matching setting alone.</para>
/// </remarks>
public static class CpuRuntime
{
    private static readonly object Gate = new();
    private static RuntimePlan? _applied;

    /// <summary>Decides the settings from the environment as the user left it.</summary>
    /// <param name="getEnvironmentVariable">Reads a variable (null: unset); tests inject one.</param>
    public static RuntimePlan Plan(Func<string, string?> getEnvironmentVariable)
    {
        ArgumentNullException.ThrowIfNull(getEnvironmentVariable);
        var environment = new List<KeyValuePair<string, string>>();
        var notes = new List<string>();
        string? Get(string name) => getEnvironmentVariable(name) is { Length: > 0 } v ? v : null;

        if (Get("OMP_WAIT_POLICY") is { } policy) notes.Add($"OMP_WAIT_POLICY={policy} (set by the user)");
        else if (Get("GOMP_SPINCOUNT") is { } spin) notes.Add($"GOMP_SPINCOUNT={spin} (set by the user): wait policy left alone");
        else environment.Add(new("OMP_WAIT_POLICY", "PASSIVE"));

        var preload = Get("LD_PRELOAD") ?? "";
        var tunables = Get("GLIBC_TUNABLES") ?? "";
        bool otherAllocator = new[] { "jemalloc", "tcmalloc", "mimalloc" }.Any(a => preload.Contains(a, StringComparison.OrdinalIgnoreCase));
        if (otherAllocator) notes.Add($"LD_PRELOAD={preload}: glibc malloc left alone");
        bool mmapByUser = Get("MALLOC_MMAP_MAX_") is not null || tunables.Contains("glibc.malloc.mmap_max", StringComparison.Ordinal);
        bool trimByUser = Get("MALLOC_TRIM_THRESHOLD_") is not null || tunables.Contains("glibc.malloc.trim_threshold", StringComparison.Ordinal);
        if (!otherAllocator && mmapByUser) notes.Add("mmap_max set by the user");
        if (!otherAllocator && trimByUser) notes.Add("trim_threshold set by the user");
        return new RuntimePlan(environment, !otherAllocator && !mmapByUser, !otherAllocator && !trimByUser, notes);
    }

    /// <summary>
    /// Plans from the process environment and applies the plan once (later calls return the first result).
    /// Returns the plan, with a note when OpenMP was already loaded and the wait policy came too late.
    /// </summary>
    public static RuntimePlan Configure()
    {
        lock (Gate)
        {
            if (_applied is not null) return _applied;
            var plan = Plan(Environment.GetEnvironmentVariable);
            if (!OperatingSystem.IsLinux()) return _applied = plan with { Notes = plan.Notes.Append("not Linux: nothing applied").ToArray() };
            var notes = plan.Notes.ToList();
            if (plan.Environment.Count > 0 && OpenMpLoaded())
                notes.Add("OpenMP was already loaded: the wait policy takes effect only in child processes");
            foreach (var (name, value) in plan.Environment)
            {
                NativeMethods.SetEnv(name, value, overwrite: 0);
                Environment.SetEnvironmentVariable(name, value);
            }
            try
            {
                if (plan.DisableMmap) NativeMethods.MallOpt(NativeMethods.M_MMAP_MAX, 0);
                if (plan.KeepFreedMemory) NativeMethods.MallOpt(NativeMethods.M_TRIM_THRESHOLD, int.MaxValue);
            }
            catch (EntryPointNotFoundException)
            {
                notes.Add("no mallopt (not glibc): allocator left alone");
            }
            return _applied = plan with { Notes = notes };
        }
    }

    /// <summary>Whether an OpenMP runtime (libgomp or libiomp) is already mapped into this process.</summary>
    public static bool OpenMpLoaded()
    {
        try
        {
            return File.ReadLines("/proc/self/maps").Any(l => l.Contains("libgomp", StringComparison.Ordinal) || l.Contains("libiomp", StringComparison.Ordinal));
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }
}
