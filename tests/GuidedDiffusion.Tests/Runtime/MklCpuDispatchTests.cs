using GuidedDiffusion.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Runtime;

public class MklCpuDispatchTests
{
    private static bool AmdWithAvx512 => CpuFeatures.Current.IsAmd && CpuFeatures.Current.HasAvx512Core;

    [Fact]
    public void CpuFeatures_ReadsTheFirstProcessorsVendorAndIdentity()
    {
        const string cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\nstepping\t: 0\nflags\t\t: avx2 fma avx512f avx512dq avx512bw avx512vl\n\n"
            + "processor\t: 1\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n";
        var cpu = CpuFeatures.Parse(cpuinfo);
        Assert.True(cpu.IsAmd);
        Assert.Equal("family 26 model 2 stepping 0", cpu.Identity);
        Assert.True(cpu.HasAvx512Core);
        Assert.False(CpuFeatures.Parse("vendor_id\t: GenuineIntel\nflags\t: avx2 fma\n").IsAmd);
    }

    [Fact]
    public void GotSlots_FindsLibtorchsOneCallSlot()
    {
        var slots = ElfRelocations.GotSlots(Path.Combine(AppContext.BaseDirectory, "libtorch_cpu.so"), "mkl_serv_intel_cpu_true");
        Assert.Single(slots);
        Assert.Empty(ElfRelocations.GotSlots(Path.Combine(AppContext.BaseDirectory, "libtorch_cpu.so"), "no_such_symbol_anywhere"));
    }

    [Fact]
    public void Enable_OnAmdWithAvx512_RedirectsMkl_ElsewhereLeavesItAlone()
    {
        var result = MklCpuDispatch.Enable(CpuFeatures.Current);
        if (AmdWithAvx512 && Environment.GetEnvironmentVariable("GUIDED_DIFFUSION_MKL_DISPATCH") is null)
            Assert.True(result.Active, result.Note);
        else
            Assert.Contains("left alone", result.Note);
    }

    [Fact]
    public void Matmul_OnTheDispatchedKernels_MatchesFloat64()
    {
        // float32 GEMM with K = 1024: rounding error grows like sqrt(K)·2⁻²⁴ of the output scale (≈ 2e-6); 1e-4 is a
        // margin of 50 and far below any wrong kernel.
        using var scope = NewDisposeScope();
        var generator = new Generator(7);
        var a = randn(new long[] { 300, 1024 }, generator: generator);
        var b = randn(new long[] { 1024, 200 }, generator: generator);
        var c = matmul(a, b).to(ScalarType.Float64);
        var expected = matmul(a.to(ScalarType.Float64), b.to(ScalarType.Float64));
        double error = (c - expected).abs().max().ToDouble() / expected.abs().max().ToDouble();
        Assert.True(error < 1e-4, $"relative error {error}");
    }
}
