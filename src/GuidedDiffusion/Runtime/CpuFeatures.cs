using System.Globalization;

namespace GuidedDiffusion.Runtime;

/// <summary>
/// The CPU's model name and the instruction-set flags that decide which kernels oneDNN (libtorch's CPU backend)
/// can use, read from <c>/proc/cpuinfo</c>.
/// </summary>
/// <param name="Model">The model name (e.g. "AMD EPYC"), or "unknown CPU".</param>
/// <param name="Flags">The kernel's flag names for the first processor (lower case, e.g. avx2, avx512_bf16, amx_tile).</param>
public sealed record CpuFeatures(string Model, IReadOnlySet<string> Flags)
{
    private static readonly Lazy<CpuFeatures> Detected = new(Detect);

    /// <summary>This machine's features (read once per process).</summary>
    public static CpuFeatures Current => Detected.Value;

    /// <summary>The first processor's "vendor_id" (e.g. AuthenticAMD, GenuineIntel), or "unknown".</summary>
    public string Vendor { get; init; } = "unknown";

    /// <summary>"cpu family", "model" and "stepping" as /proc/cpuinfo prints them (e.g. "family 25 model 17 stepping 1").</summary>
    public string Identity { get; init; } = "";

    /// <summary>The "cpu family" number (AMD: 23 Zen 1/2, 25 Zen 3/4, 26 Zen 5; Intel: 6), or -1 when unknown.</summary>
    public int Family { get; init; } = -1;

    /// <summary>The "model" number within <see cref="Family"/>, or -1 when unknown.</summary>
    public int ModelNumber { get; init; } = -1;

    /// <summary>
    /// The clock /proc/cpuinfo reports ("cpu MHz"), 0 when absent. Under a hypervisor this is usually the nominal
    /// clock; cores may boost above it.
    /// </summary>
    public double ClockMHz { get; init; }

    /// <summary>An AMD CPU (MKL treats it as "not Intel" and takes its generic kernels).</summary>
    public bool IsAmd => Vendor == "AuthenticAMD";

    /// <summary>AVX2 + FMA: oneDNN's avx2 kernels (fp32 only).</summary>
    public bool HasAvx2 => Flags.Contains("avx2") && Flags.Contains("fma");

    /// <summary>AVX-512 F/BW/VL/DQ: oneDNN's avx512_core kernels.</summary>
    public bool HasAvx512Core => new[] { "avx512f", "avx512bw", "avx512vl", "avx512dq" }.All(Flags.Contains);

    /// <summary>AVX512-BF16 (VDPBF16PS): oneDNN's avx512_core_bf16 kernels compute bf16 dot products natively.</summary>
    public bool HasAvx512Bf16 => HasAvx512Core && Flags.Contains("avx512_bf16");

    /// <summary>AMX with bf16 tiles: oneDNN's avx512_core_amx kernels.</summary>
    public bool HasAmxBf16 => Flags.Contains("amx_bf16") && Flags.Contains("amx_tile");

    /// <summary>
    /// Whether oneDNN has native bf16 convolution and matmul kernels here. Without AVX512-BF16 or AMX, libtorch
    /// falls back to reference loops for bf16 (measured on an AVX2-only EPYC: a 2048² matmul at 0.3 GFLOP/s,
    /// convolutions at 1–2 GFLOP/s, 10–200× slower than fp32).
    /// </summary>
    public bool HasNativeBf16 => HasAvx512Bf16 || HasAmxBf16;

    /// <summary>The vector and bf16 features in one line, e.g. "avx2 avx512 avx512_bf16, no amx".</summary>
    public string Summary
    {
        get
        {
            var parts = new List<string>();
            if (HasAvx2) parts.Add("avx2");
            if (HasAvx512Core) parts.Add("avx512");
            if (HasAvx512Bf16) parts.Add("avx512_bf16");
            if (HasAmxBf16) parts.Add("amx_bf16");
            var summary = parts.Count > 0 ? string.Join(' ', parts) : "no avx2";
            return summary + (HasAmxBf16 ? "" : ", no amx") + (HasNativeBf16 ? "" : ", no native bf16");
        }
    }

    /// <summary>Parses the text of <c>/proc/cpuinfo</c> (the first processor's "model name" and "flags").</summary>
    public static CpuFeatures Parse(string cpuinfo)
    {
        ArgumentNullException.ThrowIfNull(cpuinfo);
        var first = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in cpuinfo.Split('\n'))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0) continue;
            first.TryAdd(line[..colon].Trim(), line[(colon + 1)..].Trim());
        }
        string Field(string key) => first.GetValueOrDefault(key, "?");
        var set = new HashSet<string>(first.GetValueOrDefault("flags", "").Split(' ', StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal);
        return new CpuFeatures(first.GetValueOrDefault("model name", "unknown CPU"), set)
        {
            Vendor = first.GetValueOrDefault("vendor_id", "unknown"),
            Identity = $"family {Field("cpu family")} model {Field("model")} stepping {Field("stepping")}",
            Family = int.TryParse(Field("cpu family"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var family) ? family : -1,
            ModelNumber = int.TryParse(Field("model"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var model) ? model : -1,
            ClockMHz = double.TryParse(Field("cpu MHz"), NumberStyles.Float, CultureInfo.InvariantCulture, out var mhz) ? mhz : 0,
        };
    }

    private static CpuFeatures Detect()
    {
        try
        {
            return Parse(File.ReadAllText("/proc/cpuinfo"));
        }
        catch (IOException) { return Parse(""); }
        catch (UnauthorizedAccessException) { return Parse(""); }
    }
}
