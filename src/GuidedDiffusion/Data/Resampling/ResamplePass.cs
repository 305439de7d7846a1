using System.Runtime.CompilerServices;

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
        byte[] src = source.Pixels, dst = result.Pixels;
        int[] weights = map.Weights;
        for (int yy = 0; yy < rows; yy++)
        {
            int srcRow = (yy + rowOffset) * source.Stride;
            int dstRow = yy * result.Stride;
            for (int xx = 0; xx < map.OutSize; xx++)
            {
                int xmin = map.Start[xx], n = map.Count[xx], k = xx * map.WindowSize;
                int r = Half, g = Half, b = Half;
                int p = srcRow + xmin * 3;
                for (int x = 0; x < n; x++, p += 3)
                {
                    int w = weights[k + x];
                    r += src[p] * w;
                    g += src[p + 1] * w;
                    b += src[p + 2] * w;
                }
                int o = dstRow + xx * 3;
                dst[o] = Clip8(r);
                dst[o + 1] = Clip8(g);
                dst[o + 2] = Clip8(b);
            }
        }
        return result;
    }

    /// <summary>Resamples <paramref name="source"/> vertically; <paramref name="map"/> starts are relative to row 0 of the source.</summary>
    public static RgbImage Vertical(RgbImage source, KernelMap map, int startShift)
    {
        var result = new RgbImage(source.Width, map.OutSize);
        byte[] src = source.Pixels, dst = result.Pixels;
        int[] weights = map.Weights;
        int stride = source.Stride;
        for (int yy = 0; yy < map.OutSize; yy++)
        {
            int ymin = map.Start[yy] - startShift, n = map.Count[yy], k = yy * map.WindowSize;
            int dstRow = yy * stride;
            for (int c = 0; c < stride; c++)
            {
                int acc = Half;
                int p = ymin * stride + c;
                for (int y = 0; y < n; y++, p += stride)
                    acc += src[p] * weights[k + y];
                dst[dstRow + c] = Clip8(acc);
            }
        }
        return result;
    }
}
