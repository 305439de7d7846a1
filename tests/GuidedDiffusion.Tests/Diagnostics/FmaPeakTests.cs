using GuidedDiffusion.Diagnostics;
using GuidedDiffusion.Runtime;

namespace GuidedDiffusion.Tests.Diagnostics;

public sealed class FmaPeakTests
{
    private static CpuFeatures Cpu(string vendor, int family, int model, string flags, string mhz = "2600.000") => CpuFeatures.Parse(
        $"vendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: test\nstepping\t: 1\ncpu MHz\t\t: {mhz}\nflags\t\t: {flags}\n");

    private const string Avx512Bf16 = "fma avx2 avx512f avx512bw avx512vl avx512dq avx512_bf16";

    [Fact]
    public void Zen4_TwoThreads_AreThe166GflopsOfDoublePumpedAvx512()
    {
        // 2 threads × 2.6 GHz × 32 FLOP/cycle (two 256-bit FMA pipes), bf16 at twice that (VDPBF16PS).
        var peak = FmaPeak.Of(Cpu("AuthenticAMD", 25, 17, Avx512Bf16), threads: 2);
        Assert.Equal(166.4, peak.Fp32Gflops, 6);
        Assert.Equal(332.8, peak.Bf16Gflops, 6);
        Assert.Contains("Zen 4", peak.Basis, StringComparison.Ordinal);
    }

    [Fact]
    public void Zen5_HasFullWidthAvx512()
    {
        // The Zen 5 host: 2 × 2.6 × 64 ≈ 333 GFLOP/s, which its measured conv ceiling (311-371) brackets.
        Assert.Equal(332.8, FmaPeak.Of(Cpu("AuthenticAMD", 26, 2, Avx512Bf16), threads: 2).Fp32Gflops, 6);
    }

    [Fact]
    public void IntelWithAmx_UsesTheTileRateForBf16_AndAnAvx2OnlyCpuHasNoBf16Gain()
    {
        var spr = FmaPeak.Of(Cpu("GenuineIntel", 6, 143, Avx512Bf16 + " amx_bf16 amx_tile", "2000.000"), threads: 1);
        Assert.Equal(128, spr.Fp32Gflops, 6);
        Assert.Equal(2048, spr.Bf16Gflops, 6);
        var avx2 = FmaPeak.Of(Cpu("AuthenticAMD", 23, 49, "fma avx2"), threads: 4);
        Assert.Equal(avx2.Fp32Gflops, avx2.Bf16Gflops);
        Assert.Equal(4 * 2.6 * 32, avx2.Fp32Gflops, 6);
    }

    [Fact]
    public void UnknownClock_GivesNaN_NotAFigure()
    {
        var peak = FmaPeak.Of(CpuFeatures.Parse("vendor_id\t: AuthenticAMD\nflags\t: fma avx2\n"), threads: 2);
        Assert.True(double.IsNaN(peak.Fp32Gflops));
        Assert.Contains("unknown clock", peak.Basis, StringComparison.Ordinal);
    }
}
