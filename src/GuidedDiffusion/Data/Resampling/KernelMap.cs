namespace GuidedDiffusion.Data.Resampling;

/// <summary>
/// For each output coordinate, the window of source coordinates and their fixed-point weights —
/// a port of Pillow's <c>precompute_coeffs</c> followed by <c>normalize_coeffs_8bpc</c>.
/// </summary>
internal sealed class KernelMap
{
    /// <summary>
    /// Fractional bits of the fixed-point weights: 32 bits minus 8 for the pixel value minus 2 of
    /// headroom, because bicubic weights can be negative or sum above 1 within a window.
    /// </summary>
    public const int PrecisionBits = 32 - 8 - 2;

    private KernelMap(int outSize, int windowSize, int[] start, int[] count, int[] weights)
    {
        OutSize = outSize;
        WindowSize = windowSize;
        Start = start;
        Count = count;
        Weights = weights;
    }

    /// <summary>Number of output samples.</summary>
    public int OutSize { get; }

    /// <summary>Stride between the weight rows of consecutive outputs (Pillow's ksize).</summary>
    public int WindowSize { get; }

    /// <summary>First source index used by each output.</summary>
    public int[] Start { get; }

    /// <summary>Number of source samples used by each output.</summary>
    public int[] Count { get; }

    /// <summary>Fixed-point weights, <see cref="WindowSize"/> per output.</summary>
    public int[] Weights { get; }

    /// <summary>Maps the whole source range [0, inSize) onto outSize samples.</summary>
    public static KernelMap Create(int inSize, int outSize, ResampleFilter filter)
    {
        // Pillow receives the box as floats; for whole-image resizes they are exactly 0 and inSize.
        double in0 = 0, in1 = inSize;
        double scale = (in1 - in0) / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = filter.Support * filterScale;
        int windowSize = (int)Math.Ceiling(support) * 2 + 1;

        var start = new int[outSize];
        var count = new int[outSize];
        var weights = new int[outSize * windowSize];
        var k = new double[windowSize];
        double ss = 1.0 / filterScale;
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = in0 + (xx + 0.5) * scale;
            // (int) truncates like the C cast; the +0.5 is Pillow's rounding of the window edges.
            int xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;

            double ww = 0.0;
            for (int x = 0; x < xmax; x++)
            {
                double w = filter.Evaluate((x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++)
            {
                double w = ww != 0.0 ? k[x] / ww : k[x];
                weights[xx * windowSize + x] = w < 0
                    ? (int)(-0.5 + w * (1 << PrecisionBits))
                    : (int)(0.5 + w * (1 << PrecisionBits));
            }
            start[xx] = xmin;
            count[xx] = xmax;
        }
        return new KernelMap(outSize, windowSize, start, count, weights);
    }
}
