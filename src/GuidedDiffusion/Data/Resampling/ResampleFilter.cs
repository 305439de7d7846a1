namespace GuidedDiffusion.Data.Resampling;

/// <summary>
/// A separable resampling filter as Pillow defines it: a kernel function and its support radius
/// (in source pixels at scale 1).
/// </summary>
public sealed class ResampleFilter
{
    private readonly Func<double, double> _kernel;

    private ResampleFilter(string name, double support, Func<double, double> kernel)
    {
        Name = name;
        Support = support;
        _kernel = kernel;
    }

    /// <summary>Pillow's BOX filter (support 0.5), used for the power-of-two pre-shrinking.</summary>
    public static ResampleFilter Box { get; } = new("box", 0.5, BoxKernel);

    /// <summary>Pillow's BICUBIC filter (Keys cubic, a = −0.5, support 2).</summary>
    public static ResampleFilter Bicubic { get; } = new("bicubic", 2.0, BicubicKernel);

    /// <summary>Filter name, for messages.</summary>
    public string Name { get; }

    /// <summary>Support radius at scale 1.</summary>
    public double Support { get; }

    /// <summary>Evaluates the kernel at distance <paramref name="x"/>.</summary>
    public double Evaluate(double x) => _kernel(x);

    // Pillow ≥ 7 uses the half-open interval (−0.5, 0.5]; the bound matters only for
    // non-integer scales (odd sizes halved), where a sample lands exactly on the edge.
    private static double BoxKernel(double x) => x > -0.5 && x <= 0.5 ? 1.0 : 0.0;

    private static double BicubicKernel(double x)
    {
        // The expressions keep Pillow's evaluation order so the doubles round identically.
        const double a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }
}
