using System.Text.Json.Serialization;

namespace GuidedDiffusion.Diffusion;

/// <summary>The original's named beta schedules (<c>noise_schedule</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<NoiseSchedule>))]
public enum NoiseSchedule
{
    /// <summary>Ho et al.'s linear schedule.</summary>
    [JsonStringEnumMemberName("linear")]
    Linear,

    /// <summary>Nichol and Dhariwal's cosine schedule.</summary>
    [JsonStringEnumMemberName("cosine")]
    Cosine,
}

/// <summary>The original's named beta schedules (<c>get_named_beta_schedule</c>), in float64.</summary>
public static class BetaSchedule
{
    /// <summary>The schedule names <c>--noise_schedule</c> accepts.</summary>
    public static IReadOnlyList<string> Names => Spellings.Of<NoiseSchedule>();

    /// <summary>The schedule spelled <paramref name="name"/>.</summary>
    /// <exception cref="ConfigurationException">An unknown name (the error names <c>noise_schedule</c>).</exception>
    public static NoiseSchedule Parse(string name) => Spellings.Parse<NoiseSchedule>(name, "noise_schedule", "schedule");

    /// <summary>Betas of <paramref name="schedule"/> for <paramref name="steps"/> steps.</summary>
    public static double[] Named(NoiseSchedule schedule, int steps) => schedule switch
    {
        NoiseSchedule.Linear => Linear(steps),
        NoiseSchedule.Cosine => Cosine(steps),
        _ => throw new ArgumentOutOfRangeException(nameof(schedule), schedule, null),
    };

    /// <summary>
    /// Ho et al.'s linear schedule, scaled so that any T gives the same process as T = 1000:
    /// evenly spaced from 1e-4·(1000/T) to 0.02·(1000/T), computed as numpy.linspace does.
    /// </summary>
    public static double[] Linear(int steps)
    {
        double scale = 1000.0 / steps;
        double start = scale * 0.0001, end = scale * 0.02;
        var betas = new double[steps];
        if (steps == 1) { betas[0] = start; return betas; }
        double step = (end - start) / (steps - 1);
        for (int i = 0; i < steps; i++) betas[i] = i * step + start;
        betas[^1] = end; // linspace pins the endpoint exactly
        return betas;
    }

    /// <summary>
    /// Nichol &amp; Dhariwal's cosine schedule: ᾱ(s) = cos²(((s + 0.008)/1.008)·π/2),
    /// beta_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), 0.999).
    /// </summary>
    public static double[] Cosine(int steps)
    {
        static double AlphaBar(double s) { double c = Math.Cos((s + 0.008) / 1.008 * Math.PI / 2); return c * c; }
        var betas = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            double t1 = (double)i / steps, t2 = (double)(i + 1) / steps;
            betas[i] = Math.Min(1 - AlphaBar(t2) / AlphaBar(t1), 0.999);
        }
        return betas;
    }
}
