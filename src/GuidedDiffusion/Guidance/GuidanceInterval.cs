using System.Globalization;
using GuidedDiffusion.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Guidance;

/// <summary>
/// A guidance interval (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval improves sample and
/// distribution quality"): the classifier gradient is applied only while the timestep the classifier sees lies in
/// [<see cref="Low"/>, <see cref="High"/>] (inclusive), and is zero elsewhere. Timesteps are those of the original
/// process, 0 (clean) to diffusion_steps − 1 (noisiest), fractional for the fast solvers. It composes with any sampler
/// by wrapping cond_fn (<see cref="Restrict"/>).
/// </summary>
/// <param name="Low">The lowest timestep guided.</param>
/// <param name="High">The highest timestep guided.</param>
public readonly record struct GuidanceInterval(double Low, double High)
{
    /// <summary>
    /// Parses <c>--guidance_interval</c>: empty for "everywhere" (null), else <c>lo,hi</c> with 0 ≤ lo ≤ hi.
    /// </summary>
    /// <param name="text">The flag value.</param>
    /// <param name="flag">The flag to name in errors.</param>
    /// <exception cref="ConfigurationException">Not two numbers, or not 0 ≤ lo ≤ hi.</exception>
    public static GuidanceInterval? Parse(string? text, string flag = "guidance_interval")
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var parts = text.Split(',');
        if (parts.Length != 2
            || !double.TryParse(parts[0].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double low)
            || !double.TryParse(parts[1].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double high)
            || !double.IsFinite(low) || !double.IsFinite(high))
            throw new ConfigurationException(flag, $"expected 'lo,hi' (two timesteps, e.g. 200,800) or empty for everywhere, got '{text}'.");
        if (low < 0 || high < low)
            throw new ConfigurationException(flag, $"needs 0 <= lo <= hi, got '{text}'.");
        return new GuidanceInterval(low, high);
    }

    /// <summary>Whether guidance applies at <paramref name="modelTime"/>.</summary>
    public bool Contains(double modelTime) => modelTime >= Low && modelTime <= High;

    /// <summary>
    /// cond_fn limited to the interval: samples whose timestep lies outside get a zero gradient, and when no sample of
    /// the batch is inside, <paramref name="condFn"/> (the classifier's forward and backward pass) is not called at all.
    /// </summary>
    /// <param name="condFn">The guidance gradient.</param>
    public ConditionFn Restrict(ConditionFn condFn)
    {
        double low = Low, high = High;
        return (x, t, y) =>
        {
            using var scope = NewDisposeScope();
            var inside = t.to_type(ScalarType.Float64).ge(low).logical_and(t.to_type(ScalarType.Float64).le(high));
            long count = inside.sum().item<long>();
            if (count == 0) return zeros_like(x).MoveToOuterDisposeScope();
            var gradient = condFn(x, t, y);
            if (count == t.shape[0]) return gradient.MoveToOuterDisposeScope();
            var shape = new long[x.dim()];
            Array.Fill(shape, 1L);
            shape[0] = -1;
            return (gradient * inside.to_type(gradient.dtype).view(shape)).MoveToOuterDisposeScope();
        };
    }

    /// <summary>The flag spelling, <c>lo,hi</c>.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Low},{High}");
}
