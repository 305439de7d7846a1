using System.Diagnostics.CodeAnalysis;
using TorchSharp;

namespace GuidedDiffusion.Distributed;

/// <summary>
/// The communicator of a run without MPI: one rank, so every collective leaves its data unchanged.
/// Arguments are still checked as <see cref="MpiCommunicator"/> checks them, so code that runs here
/// does not fail only once it is launched with mpiexec.
/// </summary>
public sealed class SingleProcessCommunicator : ICommunicator
{
    /// <inheritdoc/>
    public int Rank => 0;

    /// <inheritdoc/>
    public int WorldSize => 1;

    /// <inheritdoc/>
    public bool IsMain => true;

    /// <inheritdoc/>
    public int LocalRank => 0;

    /// <inheritdoc/>
    public int LocalSize => 1;

    /// <inheritdoc/>
    public void Broadcast(torch.Tensor tensor, int root = 0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        RankChecks.RequireValidRoot(root, WorldSize);
    }

    /// <inheritdoc/>
    public byte[] Broadcast(byte[]? data, int root = 0)
    {
        RankChecks.RequireValidRoot(root, WorldSize);
        return data ?? throw new ArgumentNullException(nameof(data), "The root rank must supply the bytes to broadcast.");
    }

    /// <inheritdoc/>
    public string Broadcast(string? value, int root = 0)
    {
        RankChecks.RequireValidRoot(root, WorldSize);
        return value ?? throw new ArgumentNullException(nameof(value), "The root rank must supply the string to broadcast.");
    }

    /// <inheritdoc/>
    public void AllReduceSum(torch.Tensor tensor)
    {
        TensorMemory.RequireContiguousCpu(tensor, nameof(AllReduceSum));
        TensorMemory.RequireReducibleType(tensor, nameof(AllReduceSum), floatingOnly: false);
    }

    /// <inheritdoc/>
    public void AllReduceMean(torch.Tensor tensor)
    {
        TensorMemory.RequireContiguousCpu(tensor, nameof(AllReduceMean));
        TensorMemory.RequireReducibleType(tensor, nameof(AllReduceMean), floatingOnly: true);
    }

    /// <inheritdoc/>
    public void AllReduceSum(double[] values) => ArgumentNullException.ThrowIfNull(values);

    /// <inheritdoc/>
    public void AllReduceMean(double[] values) => ArgumentNullException.ThrowIfNull(values);

    /// <inheritdoc/>
    public long[] AllGather(long value) => [value];

    /// <inheritdoc/>
    public double[] AllGather(double value) => [value];

    /// <inheritdoc/>
    public void Barrier()
    {
    }

    /// <inheritdoc/>
    [DoesNotReturn]
    public void Abort(int errorCode)
    {
        // With no other ranks to stop, aborting is exiting; flush what the user should see first.
        Console.Out.Flush();
        Console.Error.Flush();
        Environment.Exit(errorCode);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
    }
}
