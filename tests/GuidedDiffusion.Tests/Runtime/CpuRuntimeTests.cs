using GuidedDiffusion.Runtime;

namespace GuidedDiffusion.Tests.Runtime;

/// <summary>The start-up plan: passive OpenMP waiting and glibc without mmap/trim, unless the user chose otherwise.</summary>
public class CpuRuntimeTests
{
    private static RuntimePlan PlanWith(params (string Name, string Value)[] env)
    {
        var map = env.ToDictionary(e => e.Name, e => e.Value);
        return CpuRuntime.Plan(name => map.GetValueOrDefault(name));
    }

    [Fact]
    public void CleanEnvironment_SetsPassiveWaitAndTunesMalloc()
    {
        var plan = PlanWith();
        Assert.Equal(new[] { new KeyValuePair<string, string>("OMP_WAIT_POLICY", "PASSIVE") }, plan.Environment);
        Assert.True(plan.DisableMmap);
        Assert.True(plan.KeepFreedMemory);
        Assert.Empty(plan.Notes);
    }

    [Theory]
    [InlineData("OMP_WAIT_POLICY", "ACTIVE")]
    [InlineData("GOMP_SPINCOUNT", "10000")]
    public void UserWaitPolicy_Wins(string name, string value)
    {
        var plan = PlanWith((name, value));
        Assert.Empty(plan.Environment);
        Assert.Contains(plan.Notes, n => n.Contains(name, StringComparison.Ordinal));
        Assert.True(plan.DisableMmap);
    }

    [Theory]
    [InlineData("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", false, false)]
    [InlineData("MALLOC_MMAP_MAX_", "65536", false, true)]
    [InlineData("MALLOC_TRIM_THRESHOLD_", "131072", true, false)]
    [InlineData("GLIBC_TUNABLES", "glibc.malloc.mmap_max=100:glibc.malloc.trim_threshold=1000", false, false)]
    [InlineData("LD_PRELOAD", "/opt/lib/libfoo.so", true, true)]
    public void UserAllocatorSettings_Win(string name, string value, bool disableMmap, bool keepFreed)
    {
        var plan = PlanWith((name, value));
        Assert.Equal(disableMmap, plan.DisableMmap);
        Assert.Equal(keepFreed, plan.KeepFreedMemory);
        Assert.Single(plan.Environment);
    }
}
