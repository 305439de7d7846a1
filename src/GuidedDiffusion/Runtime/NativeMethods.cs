using System.Runtime.InteropServices;

namespace GuidedDiffusion.Runtime;

/// <summary>
/// The C-library calls the start-up code needs: <c>mallopt</c> (glibc's allocator tuning), <c>setenv</c> (the
/// process environment native libraries read; .NET's <see cref="Environment.SetEnvironmentVariable(string, string)"/>
/// only changes the managed copy on Unix) and <c>getrusage</c>.
/// </summary>
internal static partial class NativeMethods
{
    private const string LibC = "libc";

    /// <summary>mallopt: free memory at the top of the heap is returned to the OS only above this size.</summary>
    public const int M_TRIM_THRESHOLD = -1;

    /// <summary>mallopt: the most blocks glibc serves with their own mmap (0: none, all from the heap).</summary>
    public const int M_MMAP_MAX = -4;

    /// <summary>getrusage: the calling process.</summary>
    public const int RUSAGE_SELF = 0;

    /// <summary>mprotect: read access.</summary>
    public const int PROT_READ = 1;

    /// <summary>mprotect: write access.</summary>
    public const int PROT_WRITE = 2;

    [LibraryImport(LibC, EntryPoint = "mprotect", SetLastError = true)]
    public static partial int MProtect(IntPtr address, nuint length, int protection);

    /// <summary>dladdr: the shared object containing an address (glibc 2.34+ has it in libc).</summary>
    [LibraryImport(LibC, EntryPoint = "dladdr")]
    public static partial int DlAddr(IntPtr address, out DlInfo info);

    /// <summary><c>Dl_info</c>: file name, load base, nearest symbol name and address.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct DlInfo
    {
        public IntPtr FileName, FileBase, SymbolName, SymbolAddress;
    }

    /// <summary>Loads <paramref name="fileName"/> from the program's folder (where the libtorch package puts it), else by
    /// the loader's search; <see cref="IntPtr.Zero"/> when neither works. Loading an already loaded library returns it.</summary>
    public static IntPtr LoadBesideProgram(string fileName)
    {
        foreach (var name in new[] { Path.Combine(AppContext.BaseDirectory, fileName), fileName })
            if (NativeLibrary.TryLoad(name, out var handle)) return handle;
        return IntPtr.Zero;
    }

    [LibraryImport(LibC, EntryPoint = "mallopt")]
    public static partial int MallOpt(int param, int value);

    [LibraryImport(LibC, EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SetEnv(string name, string value, int overwrite);

    [LibraryImport(LibC, EntryPoint = "getrusage")]
    public static partial int GetRUsage(int who, out RUsage usage);

    /// <summary>Linux x86-64/arm64 <c>struct rusage</c>: two timevals, then fourteen longs.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct RUsage
    {
        public long UserSeconds, UserMicroseconds, SystemSeconds, SystemMicroseconds;
        public long MaxRss, IxRss, IdRss, IsRss, MinorFaults, MajorFaults, Swaps, InBlock, OutBlock;
        public long MessagesSent, MessagesReceived, Signals, VoluntarySwitches, InvoluntarySwitches;
    }
}
