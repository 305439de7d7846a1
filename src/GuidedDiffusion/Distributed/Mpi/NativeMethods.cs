using System.Runtime.InteropServices;

namespace GuidedDiffusion.Distributed.Mpi;

/// <summary>
/// A thin binding to Open MPI's <c>libmpi.so.40</c>: the handful of MPI calls we use, as unmanaged
/// function pointers, and the predefined handles.
/// </summary>
/// <remarks>
/// Open MPI defines <c>MPI_COMM_WORLD</c>, <c>MPI_FLOAT</c>, <c>MPI_SUM</c>, ... as the addresses of
/// global objects (<c>&amp;ompi_mpi_comm_world</c>, ...), so a handle is simply the address of the exported
/// symbol. This is Open MPI's ABI, not MPICH's (whose handles are integer constants): a library without
/// those symbols is rejected with <see cref="MpiUnavailableException"/>. MPI.NET cannot be used instead:
/// it targets Microsoft MPI and crashes against Open MPI.
/// The library is opened with RTLD_GLOBAL because Open MPI's MCA plugins (loaded later by dlopen) expect
/// libmpi's symbols to be globally visible; opened privately, MPI_Init fails inside the plugins.
/// </remarks>
internal sealed unsafe class NativeMethods
{
    /// <summary>The soname of Open MPI 3.x/4.x/5.x (Debian's openmpi-bin / libopenmpi3).</summary>
    public const string LibraryName = "libmpi.so.40";

    /// <summary><c>MPI_SUCCESS</c>.</summary>
    public const int Success = 0;

    /// <summary><c>MPI_THREAD_SERIALIZED</c> in Open MPI's mpi.h: any thread may call, one at a time.</summary>
    public const int ThreadSerialized = 2;

    /// <summary><c>MPI_MAX_ERROR_STRING</c> in Open MPI's mpi.h.</summary>
    public const int MaxErrorString = 256;

    /// <summary><c>MPI_IN_PLACE</c>: Open MPI defines it as <c>(void *) 1</c>.</summary>
    public static readonly IntPtr InPlace = 1;

    private static readonly object LoadLock = new();
    private static NativeMethods? _loaded;

    private NativeMethods(IntPtr library)
    {
        CommWorld = Symbol(library, "ompi_mpi_comm_world");
        Byte = Symbol(library, "ompi_mpi_byte");
        Int32 = Symbol(library, "ompi_mpi_int32_t");
        Int64 = Symbol(library, "ompi_mpi_int64_t");
        Float = Symbol(library, "ompi_mpi_float");
        Double = Symbol(library, "ompi_mpi_double");
        OpSum = Symbol(library, "ompi_mpi_op_sum");
        OpMax = Symbol(library, "ompi_mpi_op_max");
        OpMin = Symbol(library, "ompi_mpi_op_min");
        ErrorsReturn = Symbol(library, "ompi_mpi_errors_return");

        InitThread = (delegate* unmanaged<int*, IntPtr*, int, int*, int>)Symbol(library, "MPI_Init_thread");
        Initialized = (delegate* unmanaged<int*, int>)Symbol(library, "MPI_Initialized");
        Finalized = (delegate* unmanaged<int*, int>)Symbol(library, "MPI_Finalized");
        Finalize = (delegate* unmanaged<int>)Symbol(library, "MPI_Finalize");
        CommRank = (delegate* unmanaged<IntPtr, int*, int>)Symbol(library, "MPI_Comm_rank");
        CommSize = (delegate* unmanaged<IntPtr, int*, int>)Symbol(library, "MPI_Comm_size");
        CommSetErrhandler = (delegate* unmanaged<IntPtr, IntPtr, int>)Symbol(library, "MPI_Comm_set_errhandler");
        Bcast = (delegate* unmanaged<void*, int, IntPtr, int, IntPtr, int>)Symbol(library, "MPI_Bcast");
        Allreduce = (delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int>)Symbol(library, "MPI_Allreduce");
        Allgather = (delegate* unmanaged<void*, int, IntPtr, void*, int, IntPtr, IntPtr, int>)Symbol(library, "MPI_Allgather");
        Barrier = (delegate* unmanaged<IntPtr, int>)Symbol(library, "MPI_Barrier");
        Abort = (delegate* unmanaged<IntPtr, int, int>)Symbol(library, "MPI_Abort");
        ErrorString = (delegate* unmanaged<int, byte*, int*, int>)Symbol(library, "MPI_Error_string");
    }

    // Predefined handles (addresses of Open MPI's global objects).
    public IntPtr CommWorld { get; }
    public IntPtr Byte { get; }
    public IntPtr Int32 { get; }
    public IntPtr Int64 { get; }
    public IntPtr Float { get; }
    public IntPtr Double { get; }
    public IntPtr OpSum { get; }
    public IntPtr OpMax { get; }
    public IntPtr OpMin { get; }
    public IntPtr ErrorsReturn { get; }

    // MPI functions. Every one returns an MPI error code (MPI_SUCCESS = 0).
    public delegate* unmanaged<int*, IntPtr*, int, int*, int> InitThread { get; }
    public delegate* unmanaged<int*, int> Initialized { get; }
    public delegate* unmanaged<int*, int> Finalized { get; }
    public delegate* unmanaged<int> Finalize { get; }
    public delegate* unmanaged<IntPtr, int*, int> CommRank { get; }
    public delegate* unmanaged<IntPtr, int*, int> CommSize { get; }
    public delegate* unmanaged<IntPtr, IntPtr, int> CommSetErrhandler { get; }
    public delegate* unmanaged<void*, int, IntPtr, int, IntPtr, int> Bcast { get; }
    public delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int> Allreduce { get; }
    public delegate* unmanaged<void*, int, IntPtr, void*, int, IntPtr, IntPtr, int> Allgather { get; }
    public delegate* unmanaged<IntPtr, int> Barrier { get; }
    public delegate* unmanaged<IntPtr, int, int> Abort { get; }
    public delegate* unmanaged<int, byte*, int*, int> ErrorString { get; }

    /// <summary>
    /// Opens libmpi once per process (RTLD_NOW | RTLD_GLOBAL) and resolves every symbol.
    /// </summary>
    /// <exception cref="MpiUnavailableException">The library is missing or is not Open MPI.</exception>
    public static NativeMethods Load()
    {
        lock (LoadLock)
        {
            if (_loaded is not null)
            {
                return _loaded;
            }
            const int flags = Posix.NativeMethods.RTLD_NOW | Posix.NativeMethods.RTLD_GLOBAL;
            var library = Posix.NativeMethods.DlOpen(LibraryName, flags);
            if (library == IntPtr.Zero)
            {
                // The first call of a P/Invoke can lose dlerror's text (the runtime binds and JIT-compiles
                // the stub around it); a second attempt reports why the library does not load.
                var reason = Posix.NativeMethods.LastDlError();
                if (Posix.NativeMethods.DlOpen(LibraryName, flags) is var retry && retry != IntPtr.Zero)
                {
                    library = retry;
                }
                else
                {
                    reason = Posix.NativeMethods.LastDlError() is { } second && second != Posix.NativeMethods.NoLoaderMessage ? second : reason;
                    throw new MpiUnavailableException(
                        $"Cannot load {LibraryName} ({reason}). MPI mode needs Open MPI: " +
                        "install it with `apt-get install openmpi-bin` (Debian/Ubuntu) and launch with `mpiexec -n N ...`.");
                }
            }
            _loaded = new NativeMethods(library);
            return _loaded;
        }
    }

    /// <summary>The text MPI gives for an error code, or the bare code when it has none.</summary>
    public string DescribeError(int errorCode)
    {
        var buffer = stackalloc byte[MaxErrorString + 1];
        int length = 0;
        if (ErrorString(errorCode, buffer, &length) != Success || length <= 0)
        {
            return $"MPI error {errorCode}";
        }
        return Marshal.PtrToStringUTF8((IntPtr)buffer, Math.Min(length, MaxErrorString));
    }

    private static IntPtr Symbol(IntPtr library, string name)
    {
        if (!NativeLibrary.TryGetExport(library, name, out var address))
        {
            throw new MpiUnavailableException(
                $"{LibraryName} does not export '{name}': this binding needs Open MPI (`apt-get install openmpi-bin`), " +
                "not MPICH or Intel MPI.");
        }
        return address;
    }
}
