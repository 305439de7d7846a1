using System.Diagnostics.CodeAnalysis;
using System.Text;
using GuidedDiffusion.Distributed.Mpi;
using TorchSharp;

namespace GuidedDiffusion.Distributed;

/// <summary>
/// A communicator over MPI_COMM_WORLD of Open MPI, for processes started by <c>mpiexec -n N</c>.
/// Create it through <see cref="Communicators.Create"/>; MPI allows one initialisation per process, so
/// there is at most one instance, and after <see cref="Dispose"/> (MPI_Finalize) none can follow.
/// </summary>
/// <remarks>
/// MPI is initialised with MPI_THREAD_SERIALIZED and every call is made under a lock: .NET code may reach
/// the communicator from any thread (tasks, test runners), and serialised access is all MPI then needs.
/// MPI_COMM_WORLD's error handler is set to MPI_ERRORS_RETURN so a failing call becomes an
/// <see cref="MpiException"/> naming the call, rather than an immediate abort without a .NET stack.
/// </remarks>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    private static readonly object InstanceLock = new();
    private static bool _created;

    private readonly NativeMethods _mpi;
    private readonly object _gate = new();
    private readonly bool _ownsInitialization;
    private bool _disposed;

    private MpiCommunicator(NativeMethods mpi)
    {
        _mpi = mpi;
        int initialized;
        Check(_mpi.Initialized(&initialized), "MPI_Initialized");
        if (initialized == 0)
        {
            int provided;
            Check(_mpi.InitThread(null, null, NativeMethods.ThreadSerialized, &provided), "MPI_Init_thread");
            _ownsInitialization = true;
        }
        Check(_mpi.CommSetErrhandler(_mpi.CommWorld, _mpi.ErrorsReturn), "MPI_Comm_set_errhandler");
        int rank, size;
        Check(_mpi.CommRank(_mpi.CommWorld, &rank), "MPI_Comm_rank");
        Check(_mpi.CommSize(_mpi.CommWorld, &size), "MPI_Comm_size");
        Rank = rank;
        WorldSize = size;
        // Open MPI's launcher tells each rank its place on the node; other launchers do not, and then
        // assuming all ranks share this machine is the safe guess for dividing its cores.
        LocalRank = MpiLaunch.ReadInt("OMPI_COMM_WORLD_LOCAL_RANK") ?? rank;
        LocalSize = MpiLaunch.ReadInt("OMPI_COMM_WORLD_LOCAL_SIZE") ?? size;
    }

    /// <inheritdoc/>
    public int Rank { get; }

    /// <inheritdoc/>
    public int WorldSize { get; }

    /// <inheritdoc/>
    public bool IsMain => Rank == 0;

    /// <inheritdoc/>
    public int LocalRank { get; }

    /// <inheritdoc/>
    public int LocalSize { get; }

    /// <summary>Loads libmpi and initialises MPI; the only way to obtain the instance.</summary>
    /// <exception cref="MpiUnavailableException">libmpi is missing, or MPI was already used in this process.</exception>
    internal static MpiCommunicator Initialize()
    {
        lock (InstanceLock)
        {
            if (_created)
            {
                throw new MpiUnavailableException(
                    "MPI was already initialised in this process; MPI allows that once, so share the existing communicator.");
            }
            var communicator = new MpiCommunicator(NativeMethods.Load());
            _created = true;
            return communicator;
        }
    }

    /// <inheritdoc/>
    public void Broadcast(torch.Tensor tensor, int root = 0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        RankChecks.RequireValidRoot(root, WorldSize);
        if (tensor.device_type == DeviceType.CPU && tensor.is_contiguous())
        {
            BroadcastRaw(tensor, root);
            return;
        }
        // GPU memory is not handed to MPI (CUDA-aware Open MPI is not assumed); strided views have no
        // single buffer. Both go through one contiguous CPU copy.
        using var scope = torch.NewDisposeScope();
        var staging = tensor.detach().cpu().contiguous();
        BroadcastRaw(staging, root);
        using (torch.no_grad())
        {
            tensor.copy_(staging);
        }
    }

    /// <inheritdoc/>
    public byte[] Broadcast(byte[]? data, int root = 0)
    {
        RankChecks.RequireValidRoot(root, WorldSize);
        if (Rank == root && data is null)
        {
            throw new ArgumentNullException(nameof(data), "The root rank must supply the bytes to broadcast.");
        }
        // Receivers do not know the size: send it first.
        long length = Rank == root ? data!.Length : 0;
        lock (_gate)
        {
            ThrowIfDisposed();
            Check(_mpi.Bcast(&length, 1, _mpi.Int64, root, _mpi.CommWorld), "MPI_Bcast");
            var buffer = Rank == root ? data! : new byte[length];
            if (length > 0)
            {
                fixed (byte* address = buffer)
                {
                    Check(_mpi.Bcast(address, buffer.Length, _mpi.Byte, root, _mpi.CommWorld), "MPI_Bcast");
                }
            }
            return buffer;
        }
    }

    /// <inheritdoc/>
    public string Broadcast(string? value, int root = 0)
    {
        if (Rank == root && value is null)
        {
            throw new ArgumentNullException(nameof(value), "The root rank must supply the string to broadcast.");
        }
        var bytes = Broadcast(Rank == root ? Encoding.UTF8.GetBytes(value!) : null, root);
        return Encoding.UTF8.GetString(bytes);
    }

    /// <inheritdoc/>
    public void AllReduceSum(torch.Tensor tensor)
    {
        TensorMemory.RequireContiguousCpu(tensor, nameof(AllReduceSum));
        TensorMemory.RequireReducibleType(tensor, nameof(AllReduceSum), floatingOnly: false);
        var datatype = DatatypeOf(tensor.dtype);
        lock (_gate)
        {
            ThrowIfDisposed();
            TensorMemory.ForEachChunk(tensor, int.MaxValue, (address, count) =>
                Check(_mpi.Allreduce((void*)NativeMethods.InPlace, address, count, datatype, _mpi.OpSum, _mpi.CommWorld), "MPI_Allreduce"));
        }
    }

    /// <inheritdoc/>
    public void AllReduceMean(torch.Tensor tensor)
    {
        TensorMemory.RequireContiguousCpu(tensor, nameof(AllReduceMean));
        TensorMemory.RequireReducibleType(tensor, nameof(AllReduceMean), floatingOnly: true);
        AllReduceSum(tensor);
        using var scope = torch.NewDisposeScope();
        tensor.div_(WorldSize);
    }

    /// <inheritdoc/>
    public void AllReduceSum(double[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Length == 0)
        {
            return;
        }
        lock (_gate)
        {
            ThrowIfDisposed();
            fixed (double* address = values)
            {
                Check(_mpi.Allreduce((void*)NativeMethods.InPlace, address, values.Length, _mpi.Double, _mpi.OpSum, _mpi.CommWorld), "MPI_Allreduce");
            }
        }
    }

    /// <inheritdoc/>
    public void AllReduceMean(double[] values)
    {
        AllReduceSum(values);
        for (var i = 0; i < values.Length; i++)
        {
            values[i] /= WorldSize;
        }
    }

    /// <inheritdoc/>
    public long[] AllGather(long value)
    {
        var result = new long[WorldSize];
        lock (_gate)
        {
            ThrowIfDisposed();
            fixed (long* received = result)
            {
                Check(_mpi.Allgather(&value, 1, _mpi.Int64, received, 1, _mpi.Int64, _mpi.CommWorld), "MPI_Allgather");
            }
        }
        return result;
    }

    /// <inheritdoc/>
    public double[] AllGather(double value)
    {
        var result = new double[WorldSize];
        lock (_gate)
        {
            ThrowIfDisposed();
            fixed (double* received = result)
            {
                Check(_mpi.Allgather(&value, 1, _mpi.Double, received, 1, _mpi.Double, _mpi.CommWorld), "MPI_Allgather");
            }
        }
        return result;
    }

    /// <inheritdoc/>
    public void Barrier()
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            Check(_mpi.Barrier(_mpi.CommWorld), "MPI_Barrier");
        }
    }

    /// <inheritdoc/>
    [DoesNotReturn]
    public void Abort(int errorCode)
    {
        Console.Out.Flush();
        Console.Error.Flush();
        // No lock: another thread may be blocked inside a collective, which is exactly what Abort ends.
        _mpi.Abort(_mpi.CommWorld, errorCode);
        // MPI_Abort does not return in Open MPI; if an implementation ever does, still end this rank.
        Environment.Exit(errorCode);
    }

    /// <summary>Finalises MPI (MPI_Finalize) when this instance initialised it.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            if (!_ownsInitialization)
            {
                return;
            }
            int finalized;
            Check(_mpi.Finalized(&finalized), "MPI_Finalized");
            if (finalized == 0)
            {
                Check(_mpi.Finalize(), "MPI_Finalize");
            }
        }
    }

    private void BroadcastRaw(torch.Tensor tensor, int root)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            // Sent as bytes: a broadcast copies, it does not interpret, so every dtype (bf16, fp16, bool) works.
            var elementSize = tensor.element_size();
            TensorMemory.ForEachChunk(tensor, int.MaxValue / elementSize, (address, count) =>
                Check(_mpi.Bcast(address, checked((int)(count * elementSize)), _mpi.Byte, root, _mpi.CommWorld), "MPI_Bcast"));
        }
    }

    private IntPtr DatatypeOf(torch.ScalarType dtype) => dtype switch
    {
        torch.ScalarType.Float32 => _mpi.Float,
        torch.ScalarType.Float64 => _mpi.Double,
        torch.ScalarType.Int32 => _mpi.Int32,
        torch.ScalarType.Int64 => _mpi.Int64,
        _ => throw new ArgumentException($"No MPI datatype for {dtype}.", nameof(dtype)),
    };

    private void Check(int errorCode, string call)
    {
        if (errorCode != NativeMethods.Success)
        {
            throw new MpiException(call, errorCode, _mpi.DescribeError(errorCode));
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}
