using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Runtime;

/// <summary>
/// Makes memory that a native kernel did not write hold NaN, so that a kernel reading it shows up as NaN instead of
/// passing by luck on a host whose freed memory happens to be zero.
/// </summary>
/// <remarks>
/// Two sources of uninitialised memory are covered: every new libtorch CPU allocation (c10's own
/// <c>FLAGS_caffe2_cpu_allocator_do_junk_fill</c>, exported by <c>libc10.so</c>: fills new blocks with the NaN pattern
/// 0x7fedbeef), and heap blocks glibc hands out again after a free (<see cref="FillFreedHeap"/> allocates and frees
/// NaN-filled blocks, which the allocator reuses; with the start-up setting that serves every block from the heap,
/// see <see cref="CpuRuntime"/>, that includes the large ones).
/// </remarks>
public static class AllocatorPoison
{
    private static readonly Lazy<IntPtr> JunkFillFlag = new(FindJunkFillFlag);

    /// <summary>Whether this libtorch exposes c10's junk-fill flag (it does in the 2.x CPU builds).</summary>
    public static bool JunkFillAvailable => JunkFillFlag.Value != IntPtr.Zero;

    /// <summary>
    /// Turns c10's NaN junk fill of new CPU allocations on until the returned scope is disposed (then restores the
    /// previous value). Process-wide: other threads' allocations are filled too, which costs time but cannot change a
    /// correct result.
    /// </summary>
    public static IDisposable JunkFill()
    {
        var flag = JunkFillFlag.Value;
        if (flag == IntPtr.Zero) return new Restore(IntPtr.Zero, 0);
        byte previous = Marshal.ReadByte(flag);
        Marshal.WriteByte(flag, 1);
        return new Restore(flag, previous);
    }

    /// <summary>Allocates NaN-filled tensors of <paramref name="elements"/> floats each and frees them at once.</summary>
    /// <param name="elements">Sizes to allocate (one block each).</param>
    public static void FillFreedHeap(params long[] elements)
    {
        ArgumentNullException.ThrowIfNull(elements);
        using var scope = NewDisposeScope();
        foreach (var n in elements) full(n, float.NaN, dtype: ScalarType.Float32).Dispose();
    }

    private static IntPtr FindJunkFillFlag()
    {
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            var handle = NativeMethods.LoadBesideProgram("libc10.so");
            if (handle != IntPtr.Zero && NativeLibrary.TryGetExport(handle, "FLAGS_caffe2_cpu_allocator_do_junk_fill", out var flag))
                return flag;
        }
        catch (DllNotFoundException) { }
        return IntPtr.Zero;
    }

    private sealed class Restore(IntPtr flag, byte previous) : IDisposable
    {
        private bool _done;

        public void Dispose()
        {
            if (_done || flag == IntPtr.Zero) return;
            Marshal.WriteByte(flag, previous);
            _done = true;
        }
    }
}
