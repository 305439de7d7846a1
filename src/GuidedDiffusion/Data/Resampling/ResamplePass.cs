using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace GuidedDiffusion.Data.Resampling;

/// <summary>
/// One direction of Pillow's separable 8-bit resampling (<c>ImagingResampleHorizontal_8bpc</c> /
/// <c>ImagingResampleVertical_8bpc</c>): integer accumulation of pixel × fixed-point weight,
/// a half-unit rounding offset, then a shift and a clip to 0..255.
/// </summary>
internal static class ResamplePass
{
    private const int Half = 1 << (KernelMap.PrecisionBits - 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte Clip8(int accumulator)
    {
        // Arithmetic shift, as Pillow's lookup table indexes with `in >> PRECISION_BITS`.
        int v = accumulator >> KernelMap.PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }

    /// <summary>Resamples rows <c>[rowOffset, rowOffset + rows)</c> of <paramref name="source"/> horizontally.</summary>
    public static RgbImage Horizontal(RgbImage source, int rowOffset, int rows, KernelMap map)
    {
        var result = new RgbImage(map.OutSize, rows);
        // Unchecked element access: the kernel map keeps every window inside the row by construction.
        ref byte src = ref MemoryMarshal.GetArrayDataReference(source.Pixels);
        ref byte dst = ref MemoryMarshal.GetArrayDataReference(result.Pixels);
        ref int weights = ref MemoryMarshal.GetArrayDataReference(map.Weights);
        for (int yy = 0; yy < rows; yy++)
        {
            int srcRow = (yy + rowOffset) * source.Stride;
            int dstRow = yy * result.Stride;
            for (int xx = 0; xx < map.OutSize; xx++)
            {
                int n = map.Count[xx];
                ref int k = ref Unsafe.Add(ref weights, xx * map.WindowSize);
                ref byte p = ref Unsafe.Add(ref src, srcRow + map.Start[xx] * 3);
                int r = Half, g = Half, b = Half;
                for (int x = 0; x < n; x++)
                {
                    int w = Unsafe.Add(ref k, x);
                    r += Unsafe.Add(ref p, 3 * x) * w;
                    g += Unsafe.Add(ref p, 3 * x + 1) * w;
                    b += Unsafe.Add(ref p, 3 * x + 2) * w;
                }
                ref byte o = ref Unsafe.Add(ref dst, dstRow + xx * 3);
                o = Clip8(r);
                Unsafe.Add(ref o, 1) = Clip8(g);
                Unsafe.Add(ref o, 2) = Clip8(b);
            }
        }
        return result;
    }

    /// <summary>Resamples <paramref name="source"/> vertically; window starts are shifted up by <paramref name="startShift"/> rows.</summary>
    public static RgbImage Vertical(RgbImage source, KernelMap map, int startShift)
    {
        var result = new RgbImage(source.Width, map.OutSize);
        byte[] src = source.Pixels, dst = result.Pixels;
        int stride = source.Stride;
        // Accumulating whole rows keeps memory access sequential; the sums are the same integers
        // Pillow adds (integer addition is associative), so the result is unchanged.
        var accumulator = new int[stride];
        for (int yy = 0; yy < map.OutSize; yy++)
        {
            int ymin = map.Start[yy] - startShift, n = map.Count[yy], k = yy * map.WindowSize;
            Array.Fill(accumulator, Half);
            for (int y = 0; y < n; y++)
                AccumulateRow(src.AsSpan((ymin + y) * stride, stride), map.Weights[k + y], accumulator);
            var output = dst.AsSpan(yy * stride, stride);
            for (int c = 0; c < output.Length; c++)
                output[c] = Clip8(accumulator[c]);
        }
        return result;
    }

    private static void AccumulateRow(ReadOnlySpan<byte> row, int weight, int[] accumulator)
    {
        int c = 0;
        if (Vector.IsHardwareAccelerated && row.Length >= Vector<byte>.Count)
        {
            var w = new Vector<int>(weight);
            var acc = MemoryMarshal.Cast<int, Vector<int>>(accumulator.AsSpan());
            int lanes = Vector<int>.Count;
            for (; c + Vector<byte>.Count <= row.Length; c += Vector<byte>.Count)
            {
                var bytes = new Vector<byte>(row[c..]);
                Vector.Widen(bytes, out Vector<ushort> lo, out Vector<ushort> hi);
                Vector.Widen(lo, out Vector<uint> a0, out Vector<uint> a1);
                Vector.Widen(hi, out Vector<uint> a2, out Vector<uint> a3);
                int v = c / lanes;
                acc[v] += Vector.AsVectorInt32(a0) * w;
                acc[v + 1] += Vector.AsVectorInt32(a1) * w;
                acc[v + 2] += Vector.AsVectorInt32(a2) * w;
                acc[v + 3] += Vector.AsVectorInt32(a3) * w;
            }
        }
        for (; c < row.Length; c++)
            accumulator[c] += row[c] * weight;
    }
}
