using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Diffusion;

/// <summary>
/// The per-step tables of a process as tensors, made once per device the first time a gather asks for them there:
/// the coefficients of a step are then gathered where the images are, without a round trip through the CPU.
/// A table's tensors live as long as its array (they are never handed out; gathers return new tensors).
/// </summary>
internal static class DeviceTables
{
    private static readonly ConditionalWeakTable<Array, ConcurrentDictionary<string, Tensor>> Cache = new();

    /// <summary>The float32 rounding of <paramref name="table"/> (as the original's <c>.float()</c> of the gathered float64 values) on <paramref name="device"/>.</summary>
    public static Tensor Float32(double[] table, Device device) =>
        On(table, device, () => tensor(table.Select(v => (float)v).ToArray(), new long[] { table.Length }, device: device));

    /// <summary><paramref name="table"/> as int64 on <paramref name="device"/>.</summary>
    public static Tensor Int64(int[] table, Device device) =>
        On(table, device, () => tensor(table.Select(v => (long)v).ToArray(), new long[] { table.Length }, device: device));

    private static Tensor On(Array table, Device device, Func<Tensor> create) =>
        Cache.GetOrCreateValue(table).GetOrAdd(device.ToString(), _ =>
        {
            // Outside every dispose scope: the cached tensor outlives the gather that first needed it.
            var created = create();
            created.DetachFromDisposeScope();
            return created;
        });

    /// <summary>
    /// Checks that every index of <paramref name="t"/> lies in [0, <paramref name="length"/>) when <paramref name="t"/> is on
    /// the CPU (reading a GPU tensor back for the check would stall every step; an index out of range fails there anyway).
    /// </summary>
    public static void CheckRange(Tensor t, int length)
    {
        if (t.device_type != DeviceType.CPU || t.numel() == 0) return;
        using var scope = NewDisposeScope();
        long min = t.min().item<long>(), max = t.max().item<long>();
        long bad = min < 0 ? min : max;
        if (min < 0 || max >= length)
            throw new ArgumentOutOfRangeException(nameof(t), $"timestep {bad} is outside [0, {length}).");
    }
}
