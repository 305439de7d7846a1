using GuidedDiffusion.Cli;
using GuidedDiffusion.Runtime;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Tests.Training;

/// <summary>--precision auto / bf16 against injected CPU descriptions: bf16 only where oneDNN has native kernels.</summary>
public class PrecisionResolveTests
{
    private const string Avx2Only = "processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse sse2 avx fma avx2\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu avx2 fma\n";
    private const string Zen4 = "model name\t: AMD EPYC 9B14\nflags\t\t: avx2 fma avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni\n";
    private const string SapphireRapids = "model name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t\t: avx2 fma avx512f avx512dq avx512bw avx512vl avx512_bf16 amx_bf16 amx_tile amx_int8\n";
    // AVX512-BF16 without the AVX-512 core subset oneDNN needs does not count.
    private const string Bf16FlagOnly = "model name\t: odd\nflags\t\t: avx2 fma avx512_bf16\n";

    [Theory]
    [InlineData(Avx2Only, "fp32")]
    [InlineData(Zen4, "bf16")]
    [InlineData(SapphireRapids, "bf16")]
    [InlineData(Bf16FlagOnly, "fp32")]
    public void Auto_PicksBf16OnlyWhereNative(string cpuinfo, string expected) =>
        Assert.Equal(expected, PrecisionPolicy.Resolve(TrainingPrecision.Auto, allowSlowBf16: false, CpuFeatures.Parse(cpuinfo)).Spelling());

    [Fact]
    public void Bf16_WithoutNativeKernels_IsRefusedNamingTheFlagAndTheCost()
    {
        var e = Assert.Throws<ConfigurationException>(() => PrecisionPolicy.Resolve(TrainingPrecision.Bf16, allowSlowBf16: false, CpuFeatures.Parse(Avx2Only)));
        Assert.Equal("precision", e.Setting);
        Assert.Contains("AMD EPYC 7B12", e.Message, StringComparison.Ordinal);
        Assert.Contains("10–200× slower", e.Message, StringComparison.Ordinal);
        Assert.Contains("--allow_slow_bf16 True", CliErrors.Describe(e), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(Avx2Only, true)]
    [InlineData(Zen4, false)]
    [InlineData(SapphireRapids, false)]
    public void Bf16_RunsWhereNativeOrForced(string cpuinfo, bool force) =>
        Assert.Equal("bf16", PrecisionPolicy.Resolve(TrainingPrecision.Bf16, force, CpuFeatures.Parse(cpuinfo)).Spelling());

    [Theory]
    [InlineData("fp32")]
    [InlineData("fp16")]
    public void OtherPrecisions_PassThrough(string precision) =>
        Assert.Equal(precision, PrecisionPolicy.Resolve(TrainingPrecisions.Parse(precision), allowSlowBf16: false, CpuFeatures.Parse(Avx2Only)).Spelling());

    [Fact]
    public void Parse_ReadsModelAndFirstProcessorsFlags()
    {
        var cpu = CpuFeatures.Parse(SapphireRapids);
        Assert.Equal("Intel(R) Xeon(R) Platinum 8481C", cpu.Model);
        Assert.True(cpu.HasAmxBf16);
        Assert.Equal("avx2 avx512 avx512_bf16 amx_bf16", cpu.Summary);
        Assert.Equal("avx2, no amx, no native bf16", CpuFeatures.Parse(Avx2Only).Summary);
    }
}
