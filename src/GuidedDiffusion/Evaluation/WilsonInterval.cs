namespace GuidedDiffusion.Evaluation;

/// <summary>
/// The Wilson score interval for a binomial proportion (Wilson, 1927): the confidence interval of a fraction of
/// successes that stays inside [0, 1] and keeps close to its nominal coverage at small n and near 0 or 1, where the
/// normal ("Wald") interval p ± z·sqrt(p(1 − p)/n) collapses or leaves [0, 1]. Used for agree@k of sample files.
/// </summary>
/// <param name="Lower">Lower end (NaN without trials).</param>
/// <param name="Upper">Upper end (NaN without trials).</param>
public readonly record struct WilsonInterval(double Lower, double Upper)
{
    /// <summary>z of the two-sided 95 % interval: the 0.975 quantile of the standard normal.</summary>
    public const double Z95 = 1.959963984540054;

    /// <summary>
    /// The interval of <paramref name="successes"/> out of <paramref name="trials"/>:
    /// (p + z²/2n ± z·sqrt(p(1 − p)/n + z²/4n²)) / (1 + z²/n) with p = successes / trials.
    /// </summary>
    /// <param name="successes">Successes, 0 to <paramref name="trials"/>.</param>
    /// <param name="trials">Trials; 0 gives (NaN, NaN).</param>
    /// <param name="z">The normal quantile of the confidence level (default: 95 %).</param>
    /// <exception cref="ArgumentOutOfRangeException">Negative counts, more successes than trials, or z ≤ 0.</exception>
    public static WilsonInterval Of(int successes, int trials, double z = Z95)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(trials);
        ArgumentOutOfRangeException.ThrowIfNegative(successes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(successes, trials);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(z);
        if (trials == 0) return new(double.NaN, double.NaN);
        double n = trials, p = successes / n, z2 = z * z;
        double denominator = 1 + z2 / n;
        double centre = (p + z2 / (2 * n)) / denominator;
        double half = z * Math.Sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator;
        // At p = 0 (p = 1) the lower (upper) end is exactly 0 (1) in exact arithmetic; keep it so despite rounding.
        return new(successes == 0 ? 0 : Math.Max(0, centre - half), successes == trials ? 1 : Math.Min(1, centre + half));
    }
}
