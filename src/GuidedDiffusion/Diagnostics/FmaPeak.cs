using GuidedDiffusion.Runtime;

namespace GuidedDiffusion.Diagnostics;

/// <summary>
/// The theoretical multiply-add peak of this CPU for a given thread count: threads × clock × FLOPs per cycle per
/// core, from the vector units its family is known to have. A speed figure is only meaningful beside the machine's
/// limit; this is the limit no kernel can beat at the stated clock (a boosting core can exceed it, a hyperthread
/// sharing a core cannot reach it).
/// </summary>
/// <param name="Fp32Gflops">fp32 FMA peak in GFLOP/s (multiply and add counted as two).</param>
/// <param name="Bf16Gflops">bf16 dot-product peak in GFLOP/s (VDPBF16PS or AMX), or fp32's where the CPU has neither.</param>
/// <param name="Basis">How the figures were derived, e.g. "2 threads × 2596 MHz × 32 fp32 FLOP/cycle (Zen 4: two 256-bit FMA pipes, AVX-512 double-pumped)".</param>
public sealed record FmaPeak(double Fp32Gflops, double Bf16Gflops, string Basis)
{
    /// <summary>
    /// The peak of <paramref name="threads"/> threads on <paramref name="cpu"/> at its reported clock; NaN figures
    /// when the clock is unknown.
    /// </summary>
    public static FmaPeak Of(CpuFeatures cpu, int threads)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        var (fp32PerCycle, units) = Fp32FlopsPerCycle(cpu);
        // VDPBF16PS: per 32-bit lane two bf16 products summed into fp32 (4 FLOPs where an FMA does 2) at the FMA's
        // throughput. AMX's TMUL: 1,024 bf16 FLOPs per cycle per core (Intel's figure for Sapphire Rapids).
        var (bf16PerCycle, bf16Units) = cpu.HasAmxBf16 ? (1024, "AMX TMUL")
            : cpu.HasAvx512Bf16 ? (2 * fp32PerCycle, "VDPBF16PS at the FMA rate")
            : (fp32PerCycle, "no native bf16");
        double ghz = cpu.ClockMHz / 1000;
        double Gflops(int perCycle) => ghz > 0 ? threads * ghz * perCycle : double.NaN;
        string clock = ghz > 0 ? $"{cpu.ClockMHz:0} MHz" : "unknown clock";
        return new FmaPeak(Gflops(fp32PerCycle), Gflops(bf16PerCycle),
            $"{threads} thread(s) × {clock} × {fp32PerCycle} fp32 / {bf16PerCycle} bf16 FLOP/cycle ({units}; bf16: {bf16Units})");
    }

    /// <summary>fp32 FLOPs per cycle per core (2 per FMA lane) and the vector units that give them.</summary>
    private static (int PerCycle, string Units) Fp32FlopsPerCycle(CpuFeatures cpu)
    {
        if (cpu.IsAmd)
        {
            // Zen 5 (family 26) has two 512-bit FMA pipes; Zen 2-4 two 256-bit ones (Zen 4 runs AVX-512 as two
            // halves); Zen 1 (family 23, models < 0x30) two 128-bit ones.
            if (cpu.Family >= 26) return (64, "Zen 5: two 512-bit FMA pipes");
            if (cpu.Family == 25) return (32, cpu.HasAvx512Core ? "Zen 4: two 256-bit FMA pipes, AVX-512 double-pumped" : "Zen 3: two 256-bit FMA pipes");
            if (cpu.Family == 23 && cpu.ModelNumber >= 0x30) return (32, "Zen 2: two 256-bit FMA pipes");
            if (cpu.Family == 23) return (16, "Zen 1: two 128-bit FMA pipes");
        }
        // Intel server cores with AVX-512 (Skylake-SP and later Xeons) mostly have two 512-bit FMA units; some
        // lower-bin parts have one, which halves this.
        if (cpu.HasAvx512Core) return (64, "AVX-512: assumes two 512-bit FMA units");
        if (cpu.HasAvx2) return (32, "AVX2: two 256-bit FMA units");
        return (8, "SSE: assumed one 128-bit multiply and one add");
    }
}
