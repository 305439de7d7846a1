using System.Runtime.InteropServices;

namespace GuidedDiffusion.Distributed.Posix;

/// <summary>
/// The few C-library calls the distributed layer needs: <c>dlopen</c> with <c>RTLD_GLOBAL</c> (which
/// <see cref="NativeLibrary.Load(string)"/> cannot do), the CPU affinity mask and the online CPU count.
/// </summary>
/// <remarks>
/// Everything binds to libc: glibc ≥ 2.34 holds dlopen/dlerror there (libdl.so.2 is only a stub), and
/// TorchSharp's natives need a newer glibc than that anyway.
/// </remarks>
internal static unsafe partial class NativeMethods
{
    private const string LibC = "libc";

    /// <summary>Resolve every symbol at load time, so a broken install fails here and not mid-run.</summary>
    public const int RTLD_NOW = 0x0002;

    /// <summary>Export the library's symbols to libraries loaded later (Open MPI's MCA plugins need this).</summary>
    public const int RTLD_GLOBAL = 0x0100;

    /// <summary><c>sysconf</c> name for the number of online processors (Linux value).</summary>
    public const int SC_NPROCESSORS_ONLN = 84;

    [LibraryImport(LibC, EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr DlOpen(string fileName, int flags);

    [LibraryImport(LibC, EntryPoint = "dlerror")]
    public static partial IntPtr DlError();

    [LibraryImport(LibC, EntryPoint = "sched_getaffinity", SetLastError = true)]
    public static partial int SchedGetAffinity(int pid, nuint cpuSetSize, byte* mask);

    [LibraryImport(LibC, EntryPoint = "sysconf")]
    public static partial long SysConf(int name);

    /// <summary>What <see cref="LastDlError"/> returns when the loader recorded no error.</summary>
    public const string NoLoaderMessage = "no loader message";

    /// <summary>The last dlopen error as text (and clears it), or <see cref="NoLoaderMessage"/>.</summary>
    public static string LastDlError()
    {
        var message = DlError();
        return message == IntPtr.Zero ? NoLoaderMessage : Marshal.PtrToStringUTF8(message) ?? NoLoaderMessage;
    }
}
