using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using GuidedDiffusion.Models;
using GuidedDiffusion.Runtime;
using TorchSharp;

namespace GuidedDiffusion.Diagnostics;

/// <summary>
/// What <c>guided-diffusion doctor</c> reports: the CPU, the native libraries and the ISA each uses, the thread and
/// allocator settings, and the kernel self-check of the models' unusual layers — what a user on an unfamiliar
/// machine, or a bug reporter, needs.
/// </summary>
public static partial class HostReport
{
    /// <summary>Set in the child process that runs the self-check under <c>ONEDNN_VERBOSE=1</c>.</summary>
    public const string ChildVariable = "GUIDED_DIFFUSION_DOCTOR_CHILD";

    /// <summary>
    /// The layer shapes checked: the unusual layers of the models this tool builds by default — the first
    /// convolution's input gradient (guidance, PGD), the diffusion UNet's output (3 channels, 6 with learned sigmas),
    /// the classifier's class projection at the demo's 10 and ImageNet's 1,000 classes (attention pool: conv1d;
    /// adaptive pool: conv2d).
    /// </summary>
    public static IReadOnlyList<(string Layer, ConvolutionShape Shape)> Shapes { get; } =
    [
        ("input_blocks.0.0 (first conv)", new(2, 3, 64, 3, 1, 1)),
        ("input_blocks.0.0 (first conv, width 128)", new(2, 3, 128, 3, 1, 1)),
        ("out.2 (UNet output, eps)", new(2, 64, 3, 3, 1, 1)),
        ("out.2 (UNet output, learned sigma)", new(2, 128, 6, 3, 1, 1)),
        ("out.2.c_proj (attention pool, 10 classes)", new(1, 128, 10, 1, 1, 0)),
        ("out.2.c_proj (attention pool, 1000 classes)", new(1, 512, 1000, 1, 1, 0)),
        ("out.3 (adaptive pool, 10 classes)", new(2, 128, 10, 1, 1, 0)),
    ];

    /// <summary>Runs the self-check on <see cref="Shapes"/> through the layers the models use (padded) or the raw kernels.</summary>
    /// <remarks>Where the CPU has native bf16 kernels (bf16 is then the default training precision), the trunk's
    /// unusual layer (the 3-channel first convolution) is checked in bf16 too.</remarks>
    public static IReadOnlyList<LayerCheck> SelfCheck(bool aligned)
    {
        var results = Shapes.Select(s => KernelSelfCheck.Check(s.Layer, s.Shape, aligned)).ToList();
        if (CpuFeatures.Current.HasNativeBf16)
            results.AddRange(Shapes.Where(s => s.Shape.InChannels == 3).Select(s => KernelSelfCheck.Check(s.Layer, s.Shape, aligned, dtype: TorchSharp.torch.ScalarType.BFloat16)));
        return results;
    }

    /// <summary>Writes the report to <paramref name="output"/>; returns whether the self-check passed.</summary>
    /// <param name="output">Where the lines go.</param>
    /// <param name="reexecute">How to run this program again as a child (file name and leading arguments), for the
    /// oneDNN trace; null to skip the trace.</param>
    /// <param name="rawProbe">Also check the raw native kernels without the padding (informational).</param>
    public static bool Write(TextWriter output, (string FileName, string[] Arguments)? reexecute, bool rawProbe)
    {
        ArgumentNullException.ThrowIfNull(output);
        var cpu = CpuFeatures.Current;
        output.WriteLine($"CPU:        {cpu.Model} ({cpu.Vendor} {cpu.Identity}), {Environment.ProcessorCount} logical CPUs");
        output.WriteLine($"features:   {cpu.Summary}; {string.Join(' ', cpu.Flags.Where(f => f.StartsWith("avx", StringComparison.Ordinal) || f.StartsWith("amx", StringComparison.Ordinal) || f == "fma").Order(StringComparer.Ordinal))}");
        output.WriteLine($"libtorch:   {torch.__version__} (TorchSharp {typeof(torch).Assembly.GetName().Version})");
        output.WriteLine($"MKL:        {MklVersion() ?? "not found"}; CPU dispatch: {MklCpuDispatch.Result?.Note ?? $"not set up in this process; MKL's own answer to 'Intel CPU?': {MklIntelPath()}"}");
        output.WriteLine($"threads:    torch {torch.get_num_threads()}, OMP_NUM_THREADS={Env("OMP_NUM_THREADS")}, OMP_WAIT_POLICY={Env("OMP_WAIT_POLICY")}");
        var peak = FmaPeak.Of(cpu, torch.get_num_threads());
        output.WriteLine($"FMA peak:   {peak.Fp32Gflops:0} GFLOP/s fp32, {peak.Bf16Gflops:0} bf16 ({peak.Basis})");
        var plan = CpuRuntime.Configure();
        output.WriteLine($"allocator:  glibc mmap {(plan.DisableMmap ? "off" : "left alone")}, trim {(plan.KeepFreedMemory ? "off" : "left alone")}, LD_PRELOAD={Env("LD_PRELOAD")}"
            + (plan.Notes.Count > 0 ? $" ({string.Join("; ", plan.Notes)})" : ""));
        output.WriteLine($"channel padding (BlockAlignedConv): {(BlockAlignedConv.Enabled ? "on" : "OFF (GUIDED_DIFFUSION_CONV_ALIGN=off)")}");
        if (reexecute is { } child) WriteOneDnnTrace(output, child);

        output.WriteLine($"self-check (against float64, allowed {KernelSelfCheck.Tolerance:0e0} in float32 and {KernelSelfCheck.HalfTolerance:0e0} in bf16, unwritten memory NaN-filled: {(AllocatorPoison.JunkFillAvailable ? "c10 junk fill + freed heap" : "freed heap only")}):");
        var results = SelfCheck(aligned: true);
        foreach (var r in results) output.WriteLine("  " + r);
        bool passed = results.All(r => r.Passed);
        if (rawProbe)
        {
            var raw = SelfCheck(aligned: false);
            output.WriteLine("raw native kernels, without the padding (for bug reports; the models never use this path):");
            foreach (var r in raw) output.WriteLine("  " + r);
            output.WriteLine(raw.All(r => r.Passed)
                ? "  this host's raw kernels are correct on these shapes"
                : "  this host's raw kernels are WRONG on some shapes: the padding above is what keeps training and sampling correct here");
        }
        output.WriteLine(passed ? "self-check: passed" : "self-check: FAILED — do not train or sample on this host; report this output");
        return passed;
    }

    /// <summary>
    /// The child's part: runs the padded float32 self-check under <c>ONEDNN_VERBOSE=1</c> (the verbose lines go to
    /// stdout, read by the parent). Float32 only: the defect was in float32 kernels, and half-precision kernels on
    /// other ISAs (AMX's bf16 brgemm) legitimately pad their weight blocks, which would blur the count.
    /// </summary>
    public static void RunChild(TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        output.WriteLine("child-begin");
        foreach (var (layer, shape) in Shapes) KernelSelfCheck.Check(layer, shape, aligned: true);
        output.WriteLine("child-end");
    }

    /// <summary>Counts the oneDNN primitives in a verbose log whose memory descriptors have padded blocks.</summary>
    public static (string? Version, string? Isa, int Primitives, IReadOnlyList<string> Padded) ParseOneDnnLog(string log)
    {
        ArgumentNullException.ThrowIfNull(log);
        string? version = null, isa = null;
        int primitives = 0;
        var padded = new List<string>();
        foreach (var line in log.Split('\n'))
        {
            if (line.Contains(",info,oneDNN v", StringComparison.Ordinal)) version = line[(line.IndexOf("oneDNN v", StringComparison.Ordinal) + 7)..].Trim();
            else if (line.Contains(",info,cpu,isa:", StringComparison.Ordinal)) isa = line[(line.IndexOf("isa:", StringComparison.Ordinal) + 4)..].Trim();
            else if (line.Contains(",primitive,exec,cpu,", StringComparison.Ordinal))
            {
                primitives++;
                // A descriptor's extra flags sit between the data type and "blocked": "f32:ap:blocked" (padded).
                if (PaddedDescriptor().IsMatch(line)) padded.Add(line.Trim());
            }
        }
        return (version, isa, primitives, padded);
    }

    private static void WriteOneDnnTrace(TextWriter output, (string FileName, string[] Arguments) child)
    {
        var start = new ProcessStartInfo(child.FileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in child.Arguments) start.ArgumentList.Add(a);
        start.Environment["ONEDNN_VERBOSE"] = "1";
        start.Environment[ChildVariable] = "1";
        try
        {
            using var process = Process.Start(start)!;
            var stderr = process.StandardError.ReadToEndAsync();
            string log = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            var (version, isa, primitives, padded) = ParseOneDnnLog(log);
            output.WriteLine($"oneDNN:     {version ?? "unknown"}; ISA: {isa ?? "unknown"}");
            output.WriteLine($"oneDNN primitives in the float32 self-check: {primitives}, with padded channel blocks: {padded.Count}");
            foreach (var line in padded.Take(5)) output.WriteLine("  " + line);
            if (process.ExitCode != 0) output.WriteLine($"  (the traced child exited with {process.ExitCode}: {stderr.Result.Split('\n').FirstOrDefault()})");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            output.WriteLine($"oneDNN:     trace not run ({e.Message})");
        }
    }

    private static string Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : "(unset)";

    private static unsafe string? MklVersion()
    {
        var lib = NativeMethods.LoadBesideProgram("libtorch_cpu.so");
        if (lib == IntPtr.Zero || !NativeLibrary.TryGetExport(lib, "MKL_Get_Version_String", out var fn)) return null;
        var buffer = new byte[256];
        fixed (byte* p = buffer) ((delegate* unmanaged<byte*, int, void>)fn)(p, buffer.Length);
        return System.Text.Encoding.ASCII.GetString(buffer).TrimEnd('\0', ' ');
    }

    private static unsafe string MklIntelPath()
    {
        var lib = NativeMethods.LoadBesideProgram("libtorch_cpu.so");
        if (lib == IntPtr.Zero || !NativeLibrary.TryGetExport(lib, "mkl_serv_intel_cpu_true", out var fn)) return "unknown";
        return ((delegate* unmanaged<int>)fn)() != 0 ? "yes" : "no (MKL runs its generic AVX2 kernels on non-Intel CPUs)";
    }

    [GeneratedRegex(@":(a?p|pa?):blocked:")]
    private static partial Regex PaddedDescriptor();
}
