using System.Diagnostics.CodeAnalysis;
using TorchSharp;

namespace GuidedDiffusion.Distributed;

/// <summary>
/// The collective operations data-parallel training needs, over a fixed group of processes (ranks).
/// Every rank must make the same collective calls in the same order with matching sizes; a rank that
/// skips one leaves the others waiting (see <see cref="Communicators.RunGuarded"/> for failures).
/// </summary>
/// <remarks>
/// Tensor operations work in place on contiguous CPU tensors, handing their memory to the transport by
/// pointer; there are no per-tensor copies. Implementations: <see cref="SingleProcessCommunicator"/> and
/// <see cref="MpiCommunicator"/>, chosen by <see cref="Communicators.Create"/>.
/// </remarks>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's index in the group, 0 ≤ Rank &lt; <see cref="WorldSize"/>.</summary>
    int Rank { get; }

    /// <summary>The number of processes in the group.</summary>
    int WorldSize { get; }

    /// <summary>True on rank 0, the rank that logs and writes checkpoints.</summary>
    bool IsMain { get; }

    /// <summary>This process's index among the ranks on the same machine (for picking a GPU).</summary>
    int LocalRank { get; }

    /// <summary>The number of ranks on this machine (for sharing its cores).</summary>
    int LocalSize { get; }

    /// <summary>Overwrites <paramref name="tensor"/> on every rank with its value on <paramref name="root"/>.</summary>
    /// <param name="tensor">Any dtype; same shape on every rank. Non-CPU or non-contiguous tensors are staged through a CPU copy.</param>
    /// <param name="root">The rank whose value wins.</param>
    void Broadcast(torch.Tensor tensor, int root = 0);

    /// <summary>Returns <paramref name="root"/>'s bytes on every rank (small metadata; sizes may differ).</summary>
    /// <param name="data">The bytes to send; only read on <paramref name="root"/>, may be null elsewhere.</param>
    /// <param name="root">The sending rank.</param>
    byte[] Broadcast(byte[]? data, int root = 0);

    /// <summary>Returns <paramref name="root"/>'s string on every rank (UTF-8 on the wire).</summary>
    /// <param name="value">The string to send; only read on <paramref name="root"/>, may be null elsewhere.</param>
    /// <param name="root">The sending rank.</param>
    string Broadcast(string? value, int root = 0);

    /// <summary>Replaces <paramref name="tensor"/> by the element-wise sum over all ranks, in place.</summary>
    /// <param name="tensor">A contiguous CPU tensor of float32, float64, int32 or int64.</param>
    void AllReduceSum(torch.Tensor tensor);

    /// <summary>Replaces <paramref name="tensor"/> by the element-wise mean over all ranks, in place.</summary>
    /// <param name="tensor">A contiguous CPU tensor of float32 or float64.</param>
    void AllReduceMean(torch.Tensor tensor);

    /// <summary>Replaces <paramref name="values"/> by the element-wise sum over all ranks, in place.</summary>
    void AllReduceSum(double[] values);

    /// <summary>Replaces <paramref name="values"/> by the element-wise mean over all ranks, in place.</summary>
    void AllReduceMean(double[] values);

    /// <summary>Every rank's <paramref name="value"/>, indexed by rank.</summary>
    long[] AllGather(long value);

    /// <summary>Every rank's <paramref name="value"/>, indexed by rank.</summary>
    double[] AllGather(double value);

    /// <summary>Returns once every rank has called it.</summary>
    void Barrier();

    /// <summary>
    /// Terminates every rank of the group with <paramref name="errorCode"/> (MPI_Abort). Use when this rank
    /// cannot continue: the others would otherwise wait forever in their next collective.
    /// </summary>
    [DoesNotReturn]
    void Abort(int errorCode);
}
