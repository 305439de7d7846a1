using System.Runtime.InteropServices;
using TorchSharp;

namespace GuidedDiffusion.Runtime;

/// <summary>What <see cref="MklCpuDispatch.Enable"/> did.</summary>
/// <param name="Active">Whether MKL now takes its Intel code path on this CPU.</param>
/// <param name="Note">Why (or why not), for logs and <c>doctor</c>.</param>
public sealed record MklDispatchResult(bool Active, string Note);

/// <summary>
/// Lets MKL (linked statically into <c>libtorch_cpu.so</c>) use its AVX-512 kernels on AMD CPUs that have AVX-512.
/// </summary>
/// <remarks>
/// <para>MKL picks its kernels after asking <c>mkl_serv_intel_cpu_true()</c> whether the CPU is Intel's; on an AMD
/// EPYC with AVX-512 the answer "no" sends every fp32 matmul to its generic AVX2 kernels, measured at 180 against
/// 400 GFLOP/s on a Zen 5 (issue 26). libtorch keeps MKL's symbols dynamic and calls that function through its own
/// PLT, which is why the widely used <c>LD_PRELOAD</c> shim works. This class does the same without a shim or a
/// compiler: it finds the function's GOT slot in <c>libtorch_cpu.so</c> (from the file's relocation table) and points
/// it at a managed function returning 1, before the first BLAS call. MKL's binary is not modified, nothing is written
/// to disk, and the CPU-feature checks MKL makes after that decision still apply.</para>
/// <para>Only on AMD CPUs with AVX-512 (Intel CPUs already get the fast path; on CPUs without AVX-512 there is no
/// faster kernel to reach). <c>GUIDED_DIFFUSION_MKL_DISPATCH=off</c> leaves MKL alone.</para>
/// </remarks>
public static unsafe class MklCpuDispatch
{
    private const string Symbol = "mkl_serv_intel_cpu_true";
    private static readonly object Gate = new();
    private static MklDispatchResult? _result;

    /// <summary>The result of the first <see cref="Enable"/> call in this process (null before it).</summary>
    public static MklDispatchResult? Result => _result;

    /// <summary>Applies the redirection once per process (later calls return the first result).</summary>
    /// <param name="cpu">The CPU (<see cref="CpuFeatures.Current"/>).</param>
    public static MklDispatchResult Enable(CpuFeatures cpu)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        lock (Gate)
        {
            return _result ??= Apply(cpu);
        }
    }

    private static MklDispatchResult Apply(CpuFeatures cpu)
    {
        if (string.Equals(Environment.GetEnvironmentVariable("GUIDED_DIFFUSION_MKL_DISPATCH"), "off", StringComparison.OrdinalIgnoreCase))
            return new(false, "left alone (GUIDED_DIFFUSION_MKL_DISPATCH=off)");
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return new(false, "left alone (not Linux x86-64)");
        if (!cpu.IsAmd) return new(false, "left alone (not an AMD CPU)");
        if (!cpu.HasAvx512Core) return new(false, "left alone (no AVX-512: no faster MKL kernels to reach)");
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            var path = Path.Combine(AppContext.BaseDirectory, "libtorch_cpu.so");
            if (!File.Exists(path) || !NativeLibrary.TryLoad(path, out var handle))
                return new(false, "left alone (libtorch_cpu.so not found next to the program)");
            if (!NativeLibrary.TryGetExport(handle, Symbol, out var function))
                return new(false, $"left alone (libtorch_cpu.so exports no {Symbol})");
            if (((delegate* unmanaged<int>)function)() != 0)
                return new(true, "MKL already takes its Intel code path");
            if (NativeMethods.DlAddr(function, out var info) == 0 || info.FileBase == IntPtr.Zero)
                return new(false, "left alone (dladdr found no load address)");
            var slots = ElfRelocations.GotSlots(path, Symbol);
            if (slots.Count == 0) return new(false, $"left alone (no GOT slot for {Symbol} in libtorch_cpu.so)");
            delegate* unmanaged<int> replacement = &IntelCpuTrue;
            foreach (var offset in slots) WriteProtected(info.FileBase + (nint)offset, (IntPtr)replacement);
            bool redirected = slots.All(offset => *(IntPtr*)(info.FileBase + (nint)offset) == (IntPtr)replacement);
            return redirected
                ? new(true, $"MKL takes its Intel (AVX-512) code path ({slots.Count} GOT slot(s) of libtorch_cpu.so redirected)")
                : new(false, "left alone (the GOT slot did not take the new address)");
        }
        catch (Exception e) when (e is IOException or InvalidDataException or DllNotFoundException or EntryPointNotFoundException or UnauthorizedAccessException)
        {
            return new(false, $"left alone ({e.Message})");
        }
    }

    [UnmanagedCallersOnly]
    private static int IntelCpuTrue() => 1;

    private static void WriteProtected(IntPtr address, IntPtr value)
    {
        long page = Environment.SystemPageSize;
        var start = (IntPtr)((long)address & ~(page - 1));
        // A lazily bound .got.plt is writable already; a full-RELRO GOT is read-only after relocation: open the page,
        // write, and give it back its protection (never narrower than it was: the loader writes lazy slots there).
        var previous = Protection(address);
        bool writable = (previous & NativeMethods.PROT_WRITE) != 0;
        if (!writable && NativeMethods.MProtect(start, (nuint)page, previous | NativeMethods.PROT_WRITE) != 0)
            throw new UnauthorizedAccessException($"mprotect failed ({Marshal.GetLastPInvokeError()})");
        *(IntPtr*)address = value;
        if (!writable) NativeMethods.MProtect(start, (nuint)page, previous);
    }

    // The page's protection from /proc/self/maps ("start-end rwxp ...").
    private static int Protection(IntPtr address)
    {
        ulong at = (ulong)address;
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            int dash = line.IndexOf('-', StringComparison.Ordinal), space = line.IndexOf(' ', StringComparison.Ordinal);
            if (dash < 0 || space < dash) continue;
            ulong from = Convert.ToUInt64(line[..dash], 16), to = Convert.ToUInt64(line[(dash + 1)..space], 16);
            if (at < from || at >= to) continue;
            var perms = line.AsSpan(space + 1, 3);
            return (perms[0] == 'r' ? NativeMethods.PROT_READ : 0) | (perms[1] == 'w' ? NativeMethods.PROT_WRITE : 0) | (perms[2] == 'x' ? 4 : 0);
        }
        throw new InvalidDataException($"address 0x{at:x} is not mapped");
    }
}

/// <summary>Reads the GOT slots of a dynamic symbol from an ELF64 little-endian shared object's relocation tables.</summary>
public static class ElfRelocations
{
    private const uint ShtRela = 4, ShtDynsym = 11;
    private const uint RX8664GlobDat = 6, RX8664JumpSlot = 7;

    /// <summary>The virtual addresses (relative to the load base) of every GLOB_DAT / JUMP_SLOT slot of <paramref name="symbol"/>.</summary>
    public static IReadOnlyList<ulong> GotSlots(string path, string symbol)
    {
        using var file = File.OpenRead(path);
        using var reader = new BinaryReader(file);
        var ident = reader.ReadBytes(16);
        if (ident.Length < 16 || ident[0] != 0x7f || ident[1] != (byte)'E' || ident[2] != (byte)'L' || ident[3] != (byte)'F' || ident[4] != 2 || ident[5] != 1)
            throw new InvalidDataException($"{path} is not a 64-bit little-endian ELF file");
        file.Position = 0x28;
        ulong shoff = reader.ReadUInt64();
        file.Position = 0x3A;
        ushort shentsize = reader.ReadUInt16(), shnum = reader.ReadUInt16();
        var sections = new (uint Type, ulong Offset, ulong Size, uint Link, ulong EntSize)[shnum];
        for (int i = 0; i < shnum; i++)
        {
            file.Position = (long)shoff + i * shentsize;
            reader.ReadUInt32();
            uint type = reader.ReadUInt32();
            reader.ReadUInt64(); reader.ReadUInt64();
            ulong offset = reader.ReadUInt64(), size = reader.ReadUInt64();
            uint link = reader.ReadUInt32();
            reader.ReadUInt32(); reader.ReadUInt64();
            ulong entsize = reader.ReadUInt64();
            sections[i] = (type, offset, size, link, entsize);
        }
        int dynsym = Array.FindIndex(sections, s => s.Type == ShtDynsym);
        if (dynsym < 0) return [];
        var strtab = sections[sections[dynsym].Link];
        file.Position = (long)strtab.Offset;
        var strings = reader.ReadBytes((int)strtab.Size);
        var name = System.Text.Encoding.ASCII.GetBytes(symbol);
        long index = -1;
        ulong count = sections[dynsym].Size / 24;
        for (ulong i = 0; i < count && index < 0; i++)
        {
            file.Position = (long)(sections[dynsym].Offset + i * 24);
            uint nameOffset = reader.ReadUInt32();
            if (nameOffset + name.Length < strings.Length && strings.AsSpan((int)nameOffset, name.Length).SequenceEqual(name) && strings[nameOffset + name.Length] == 0)
                index = (long)i;
        }
        if (index < 0) return [];
        var slots = new List<ulong>();
        foreach (var rela in sections.Where(s => s.Type == ShtRela && s.Link == dynsym))
        {
            file.Position = (long)rela.Offset;
            var bytes = reader.ReadBytes((int)rela.Size);
            for (int at = 0; at + 24 <= bytes.Length; at += 24)
            {
                ulong info = BitConverter.ToUInt64(bytes, at + 8);
                if ((long)(info >> 32) == index && (uint)info is RX8664JumpSlot or RX8664GlobDat)
                    slots.Add(BitConverter.ToUInt64(bytes, at));
            }
        }
        return slots;
    }
}
