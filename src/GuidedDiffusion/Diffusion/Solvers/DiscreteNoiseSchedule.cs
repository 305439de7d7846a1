using static TorchSharp.torch;

namespace GuidedDiffusion.Diffusion.Solvers;

/// <summary>
/// A discrete-time diffusion seen as a continuous-time VP process on t ∈ [1/N, 1], as DPM-Solver's and UniPC's
/// <c>NoiseScheduleVP('discrete')</c> build it: step i (0-based) sits at t = (i + 1)/N, log α_t = ½ log ᾱ is
/// interpolated piecewise linearly in t between the steps (and extrapolated linearly beyond them), σ_t = √(1 − α_t²)
/// and λ_t = log α_t − log σ_t. Scalars are computed in float64 (the references use float32 tables; see the parity
/// tests for what that costs them).
/// </summary>
public sealed class DiscreteNoiseSchedule
{
    /// <summary>DPM-Solver drops the last steps whose λ is below this, for numerical stability (UniPC does not).</summary>
    public const double ClippedLambda = -5.1;

    private readonly double[] tArray;
    private readonly double[] logAlphaArray;
    private readonly double[] logAlphaAscending;
    private readonly double[] tDescending;
    private readonly double modelTimeScale;

    /// <summary>Creates the schedule from the process's ᾱ (one entry per step).</summary>
    /// <param name="alphasCumprod">ᾱ_i of the full (unspaced) process, i = 0..N−1.</param>
    /// <param name="clipLambda">DPM-Solver's <c>numerical_clip_alpha</c>: drop the last steps with λ &lt; −5.1 (a linear
    /// 1000-step schedule has none; a cosine one loses its noisiest steps). UniPC does not clip.</param>
    /// <param name="modelTimeScale">What a step index is multiplied by before the model sees it: 1, or 1000/N with
    /// <c>rescale_timesteps</c>.</param>
    public DiscreteNoiseSchedule(IReadOnlyList<double> alphasCumprod, bool clipLambda = true, double modelTimeScale = 1.0)
    {
        if (alphasCumprod.Count < 2) throw new ArgumentException("a discrete schedule needs at least 2 steps.", nameof(alphasCumprod));
        var logAlphas = alphasCumprod.Select(a => 0.5 * Math.Log(a)).ToList();
        if (clipLambda)
        {
            int below = logAlphas.Count(la => Lambda(la) < ClippedLambda);
            if (below > 0) logAlphas.RemoveRange(logAlphas.Count - below, below);
        }
        logAlphaArray = logAlphas.ToArray();
        TotalN = logAlphaArray.Length;
        tArray = Enumerable.Range(1, TotalN).Select(i => (double)i / TotalN).ToArray();
        logAlphaAscending = logAlphaArray.Reverse().ToArray();
        tDescending = tArray.Reverse().ToArray();
        this.modelTimeScale = modelTimeScale;
    }

    /// <summary>The schedule of a (unspaced) process: its ᾱ, and its model-time scaling with <c>rescale_timesteps</c>.</summary>
    /// <param name="diffusion">A process without respacing.</param>
    /// <param name="clipLambda">See the constructor.</param>
    /// <exception cref="ConfigurationException">The process is respaced (solvers choose their own times).</exception>
    public static DiscreteNoiseSchedule For(GaussianDiffusion diffusion, bool clipLambda = true)
    {
        if (diffusion.NumTimesteps != diffusion.OriginalNumSteps)
            throw new ConfigurationException("timestep_respacing",
                $"the fast solvers integrate the full {diffusion.OriginalNumSteps}-step process and choose their own times with {SettingText.Ref("steps")} and {SettingText.Ref("skip_type")}; leave timestep_respacing empty.");
        return new DiscreteNoiseSchedule(diffusion.AlphasCumprod, clipLambda, diffusion.RescaleTimesteps ? 1000.0 / diffusion.OriginalNumSteps : 1.0);
    }

    /// <summary>Number of steps kept (N; after λ clipping).</summary>
    public int TotalN { get; }

    /// <summary>The start time t_T = 1.</summary>
    public double T => 1.0;

    /// <summary>The end time t_0 = 1/N (step 0).</summary>
    public double TEnd => 1.0 / TotalN;

    /// <summary>log α_t (interpolated).</summary>
    public double MarginalLogMeanCoeff(double t) => Interpolate(t, tArray, logAlphaArray);

    /// <summary>α_t = √ᾱ(t).</summary>
    public double MarginalAlpha(double t) => Math.Exp(MarginalLogMeanCoeff(t));

    /// <summary>σ_t = √(1 − α_t²).</summary>
    public double MarginalStd(double t) => Math.Sqrt(1.0 - Math.Exp(2.0 * MarginalLogMeanCoeff(t)));

    /// <summary>λ_t = log α_t − log σ_t, the half log-SNR.</summary>
    public double MarginalLambda(double t) => Lambda(MarginalLogMeanCoeff(t));

    /// <summary>The t whose λ_t is <paramref name="lambda"/> (interpolated in log α).</summary>
    public double InverseLambda(double lambda)
    {
        double logAlpha = -0.5 * LogAddExp(0.0, -2.0 * lambda);
        return Interpolate(logAlpha, logAlphaAscending, tDescending);
    }

    /// <summary>
    /// The timestep the networks see at continuous time t: the step index N·t − 1, fractional between steps (times
    /// 1000/N with <c>rescale_timesteps</c>). For N = 1000 this is the references' <c>1000·(t − 1/N)</c>; unlike theirs
    /// it stays a step index for other N (a 4000-step model, a λ-clipped cosine schedule).
    /// </summary>
    public double ModelTime(double t) => (TotalN * t - 1.0) * modelTimeScale;

    /// <summary><see cref="ModelTime"/> as the float32 tensor [B] a model and a classifier take.</summary>
    public Tensor ModelTimesteps(double t, long batch, Device device) =>
        full(new[] { batch }, ModelTime(t), dtype: ScalarType.Float32, device: device);

    private static double Lambda(double logAlpha) => logAlpha - 0.5 * Math.Log(1.0 - Math.Exp(2.0 * logAlpha));

    private static double LogAddExp(double a, double b)
    {
        double max = Math.Max(a, b);
        return max + Math.Log(Math.Exp(a - max) + Math.Exp(b - max));
    }

    /// <summary>The references' <c>interpolate_fn</c>: piecewise linear through (xp, yp), xp increasing, with the end
    /// segments extended beyond the first and last knots.</summary>
    private static double Interpolate(double x, double[] xp, double[] yp)
    {
        int k = xp.Length;
        int lo;
        if (x <= xp[0]) lo = 0;
        else if (x >= xp[k - 1]) lo = k - 2;
        else
        {
            int index = Array.BinarySearch(xp, x);
            lo = index >= 0 ? Math.Min(index, k - 2) : ~index - 1;
        }
        double x0 = xp[lo], x1 = xp[lo + 1];
        return yp[lo] + (x - x0) * (yp[lo + 1] - yp[lo]) / (x1 - x0);
    }
}
