using TorchSharp;

namespace GuidedDiffusion.Distributed;

/// <summary>
/// Hands a tensor's memory to native code by pointer, and the checks that make that safe.
/// </summary>
internal static class TensorMemory
{
    /// <summary>Receives one chunk of a tensor's memory: its address and its element count.</summary>
    public unsafe delegate void ChunkAction(void* address, int count);

    /// <summary>Throws unless <paramref name="tensor"/> is a contiguous CPU tensor (so its memory can be shared by pointer).</summary>
    public static void RequireContiguousCpu(torch.Tensor tensor, string operation)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.device_type != DeviceType.CPU)
        {
            throw new ArgumentException(
                $"{operation} needs a CPU tensor, got one on {tensor.device}; copy it to the CPU first.", nameof(tensor));
        }
        if (!tensor.is_contiguous())
        {
            throw new ArgumentException(
                $"{operation} needs a contiguous tensor (shape [{string.Join(", ", tensor.shape)}] is a strided view); call .contiguous() first.",
                nameof(tensor));
        }
    }

    /// <summary>Throws unless <paramref name="tensor"/>'s dtype can be summed; <paramref name="floatingOnly"/> for means.</summary>
    public static void RequireReducibleType(torch.Tensor tensor, string operation, bool floatingOnly)
    {
        var dtype = tensor.dtype;
        var ok = dtype is torch.ScalarType.Float32 or torch.ScalarType.Float64
            || (!floatingOnly && dtype is torch.ScalarType.Int32 or torch.ScalarType.Int64);
        if (!ok)
        {
            var allowed = floatingOnly ? "float32 or float64" : "float32, float64, int32 or int64";
            throw new ArgumentException($"{operation} supports {allowed} tensors, got {dtype}.", nameof(tensor));
        }
    }

    /// <summary>
    /// Calls <paramref name="action"/> for consecutive chunks of a contiguous CPU tensor, each at most
    /// <paramref name="maxChunkElements"/> long, because MPI counts (and spans) are 32-bit. Tensors that
    /// fit are passed whole, without creating any view.
    /// </summary>
    public static unsafe void ForEachChunk(torch.Tensor tensor, long maxChunkElements, ChunkAction action)
    {
        var total = tensor.numel();
        if (total == 0)
        {
            return;
        }
        // Spans are limited to int.MaxValue bytes, MPI counts to int.MaxValue elements.
        var limit = Math.Min(maxChunkElements, int.MaxValue / tensor.element_size());
        if (total <= limit)
        {
            fixed (byte* address = tensor.bytes)
            {
                action(address, (int)total);
            }
            return;
        }
        using var flat = tensor.view(-1);
        for (long offset = 0; offset < total; offset += limit)
        {
            var count = (int)Math.Min(limit, total - offset);
            using var part = flat.narrow(0, offset, count);
            fixed (byte* address = part.bytes)
            {
                action(address, count);
            }
        }
    }
}
