using System.Runtime.InteropServices;

namespace GuidedDiffusion.Distributed.Posix;

/// <summary>
/// The few C-library calls the distributed layer needs: <c>dlopen</c> with <c>RTLD_GLOBAL</c> (which
/// <see cref="NativeLibrary.Load(string)"/> cannot do), the CPU affinity mask and the online CPU count.
/// </summary>
/// <remarks>
/// dlopen/dlerror are bound to libdl.so.2: glibc ≥ 2.34 moved them into libc but still ships libdl.so.2
/// as a forwarding stub, so that name works on old and new systems alike.
/// </remarks>
internal static unsafe partial class NativeMethods
{
    private const string LibDl = "libdl.so.2";
    private const string LibC = "libc";

    /// <summary>Resolve every symbol at load time, so a broken install fails here and not mid-run.</summary>
    public const int RTLD_NOW = 0x0002;

    /// <summary>Export the library's symbols to libraries loaded later (Open MPI's MCA plugins need this).</summary>
    public const int RTLD_GLOBAL = 0x0100;

    /// <summary><c>sysconf</c> name for the number of online processors (Linux value).</summary>
    public const int SC_NPROCESSORS_ONLN = 84;

    [LibraryImport(LibDl, EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr DlOpen(string fileName, int flags);

    [LibraryImport(LibDl, EntryPoint = "dlerror")]
    public static partial IntPtr DlError();

    [LibraryImport(LibC, EntryPoint = "sched_getaffinity", SetLastError = true)]
    public static partial int SchedGetAffinity(int pid, nuint cpuSetSize, byte* mask);

    [LibraryImport(LibC, EntryPoint = "sysconf")]
    public static partial long SysConf(int name);

    /// <summary>The last dlopen error as text, or a placeholder when the loader gave none.</summary>
    public static string LastDlError()
    {
        var message = DlError();
        return message == IntPtr.Zero ? "no loader message" : Marshal.PtrToStringUTF8(message) ?? "no loader message";
    }
}
