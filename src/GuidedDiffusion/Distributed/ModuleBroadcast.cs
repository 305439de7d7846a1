using TorchSharp;

namespace GuidedDiffusion.Distributed;

/// <summary>Makes a module identical on every rank.</summary>
public static class ModuleBroadcast
{
    /// <summary>
    /// Overwrites every parameter and buffer of <paramref name="module"/> with its value on
    /// <paramref name="root"/>, so ranks that initialised (or loaded) differently start from the same weights.
    /// </summary>
    /// <param name="communicator">The run's communicator.</param>
    /// <param name="module">The same architecture on every rank.</param>
    /// <param name="root">The rank whose weights win.</param>
    /// <exception cref="InvalidOperationException">The ranks' modules differ in their tensors' count, shapes or dtypes.</exception>
    public static void BroadcastParameters(this ICommunicator communicator, torch.nn.Module module, int root = 0)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(module);
        if (communicator.WorldSize == 1)
        {
            return;
        }
        var tensors = module.parameters().Cast<torch.Tensor>().Concat(module.buffers()).ToArray();
        // A mismatch would pair up the wrong tensors, or leave a rank waiting for a broadcast that never
        // comes; compare a fingerprint of the layout first and fail with a message instead.
        var fingerprints = communicator.AllGather(LayoutFingerprint(tensors));
        var differing = Enumerable.Range(0, fingerprints.Length).Where(r => fingerprints[r] != fingerprints[root]).ToArray();
        if (differing.Length > 0)
        {
            throw new InvalidOperationException(
                $"Cannot broadcast the model: rank(s) {string.Join(", ", differing)} hold parameters and buffers whose count, " +
                $"shapes or dtypes differ from rank {root}'s ({tensors.Length} tensors here). Build the same architecture on every rank.");
        }
        foreach (var tensor in tensors)
        {
            communicator.Broadcast(tensor, root);
        }
    }

    /// <summary>A hash (FNV-1a) of every tensor's dtype and shape, in order.</summary>
    internal static long LayoutFingerprint(IEnumerable<torch.Tensor> tensors)
    {
        const ulong prime = 1099511628211;
        var hash = 14695981039346656037;
        void Mix(long value)
        {
            hash ^= unchecked((ulong)value);
            hash *= prime;
        }
        foreach (var tensor in tensors)
        {
            Mix((long)tensor.dtype);
            Mix(tensor.dim());
            foreach (var extent in tensor.shape)
            {
                Mix(extent);
            }
        }
        return unchecked((long)hash);
    }
}
