using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Diffusion;

/// <summary>
/// The forward (noising) process of Ho et al. with every per-step table of the original's
/// <c>GaussianDiffusion</c>, in float64. The original always builds a <c>SpacedDiffusion</c>, whose betas are
/// recomputed from the kept ᾱ's even when every step is kept; <see cref="Spaced"/> reproduces that, so the
/// tables equal the ones the original trainer really uses (they differ from the raw betas in the last bits).
/// </summary>
public sealed class GaussianDiffusion
{
    private GaussianDiffusion(double[] betas, int[] timestepMap, int originalNumSteps, bool rescaleTimesteps)
    {
        int n = betas.Length;
        Betas = betas;
        TimestepMap = timestepMap;
        OriginalNumSteps = originalNumSteps;
        RescaleTimesteps = rescaleTimesteps;

        AlphasCumprod = new double[n];
        double product = 1.0;
        for (int i = 0; i < n; i++) { product *= 1.0 - betas[i]; AlphasCumprod[i] = product; }
        AlphasCumprodPrev = new double[n];
        AlphasCumprodNext = new double[n];
        for (int i = 0; i < n; i++)
        {
            AlphasCumprodPrev[i] = i == 0 ? 1.0 : AlphasCumprod[i - 1];
            AlphasCumprodNext[i] = i == n - 1 ? 0.0 : AlphasCumprod[i + 1];
        }
        SqrtAlphasCumprod = Map(AlphasCumprod, a => Math.Sqrt(a));
        SqrtOneMinusAlphasCumprod = Map(AlphasCumprod, a => Math.Sqrt(1.0 - a));
        OneMinusAlphasCumprod = Map(AlphasCumprod, a => 1.0 - a);
        LogOneMinusAlphasCumprod = Map(AlphasCumprod, a => Math.Log(1.0 - a));
        SqrtRecipAlphasCumprod = Map(AlphasCumprod, a => Math.Sqrt(1.0 / a));
        SqrtRecipm1AlphasCumprod = Map(AlphasCumprod, a => Math.Sqrt(1.0 / a - 1));

        PosteriorVariance = new double[n];
        PosteriorMeanCoef1 = new double[n];
        PosteriorMeanCoef2 = new double[n];
        for (int i = 0; i < n; i++)
        {
            double oneMinus = 1.0 - AlphasCumprod[i];
            PosteriorVariance[i] = betas[i] * (1.0 - AlphasCumprodPrev[i]) / oneMinus;
            PosteriorMeanCoef1[i] = betas[i] * Math.Sqrt(AlphasCumprodPrev[i]) / oneMinus;
            PosteriorMeanCoef2[i] = (1.0 - AlphasCumprodPrev[i]) * Math.Sqrt(1.0 - betas[i]) / oneMinus;
        }
        // The posterior variance is 0 at t = 0; the original clips the log by repeating entry 1.
        PosteriorLogVarianceClipped = new double[n];
        for (int i = 0; i < n; i++)
            PosteriorLogVarianceClipped[i] = Math.Log(n > 1 ? PosteriorVariance[i == 0 ? 1 : i] : PosteriorVariance[0]);
    }

    /// <summary>
    /// The spaced process keeping base steps <paramref name="keptSteps"/> (sorted): betas become
    /// 1 − ᾱ_kept[i]/ᾱ_kept[i−1] over the base process's ᾱ.
    /// </summary>
    public static GaussianDiffusion Spaced(double[] baseBetas, int[] keptSteps, bool rescaleTimesteps = false)
    {
        var kept = new HashSet<int>(keptSteps);
        var betas = new List<double>();
        var map = new List<int>();
        double product = 1.0, last = 1.0;
        for (int i = 0; i < baseBetas.Length; i++)
        {
            product *= 1.0 - baseBetas[i];
            if (!kept.Contains(i)) continue;
            betas.Add(1 - product / last);
            last = product;
            map.Add(i);
        }
        return new GaussianDiffusion(betas.ToArray(), map.ToArray(), baseBetas.Length, rescaleTimesteps);
    }

    /// <summary>Number of steps of this (spaced) process; t ranges over [0, NumTimesteps).</summary>
    public int NumTimesteps => Betas.Length;

    /// <summary>Number of steps of the base process before respacing.</summary>
    public int OriginalNumSteps { get; }

    /// <summary>Whether models receive t scaled by 1000 / OriginalNumSteps (<c>--rescale_timesteps</c>).</summary>
    public bool RescaleTimesteps { get; }

    /// <summary>For each spaced step, the base step it stands for.</summary>
    public int[] TimestepMap { get; }

    /// <summary>β_t of the spaced process.</summary>
    public double[] Betas { get; }
    /// <summary>ᾱ_t = ∏(1 − β).</summary>
    public double[] AlphasCumprod { get; }
    /// <summary>ᾱ_{t−1} (1 at t = 0).</summary>
    public double[] AlphasCumprodPrev { get; }
    /// <summary>ᾱ_{t+1} (0 at the last step).</summary>
    public double[] AlphasCumprodNext { get; }
    /// <summary>sqrt(ᾱ_t).</summary>
    public double[] SqrtAlphasCumprod { get; }
    /// <summary>sqrt(1 − ᾱ_t).</summary>
    public double[] SqrtOneMinusAlphasCumprod { get; }
    /// <summary>1 − ᾱ_t (the variance of q(x_t | x_0)).</summary>
    public double[] OneMinusAlphasCumprod { get; }
    /// <summary>log(1 − ᾱ_t).</summary>
    public double[] LogOneMinusAlphasCumprod { get; }
    /// <summary>sqrt(1/ᾱ_t).</summary>
    public double[] SqrtRecipAlphasCumprod { get; }
    /// <summary>sqrt(1/ᾱ_t − 1).</summary>
    public double[] SqrtRecipm1AlphasCumprod { get; }
    /// <summary>Variance of q(x_{t−1} | x_t, x_0).</summary>
    public double[] PosteriorVariance { get; }
    /// <summary>log of the posterior variance, with entry 0 replaced by entry 1 (it is 0 there).</summary>
    public double[] PosteriorLogVarianceClipped { get; }
    /// <summary>Coefficient of x_0 in the posterior mean.</summary>
    public double[] PosteriorMeanCoef1 { get; }
    /// <summary>Coefficient of x_t in the posterior mean.</summary>
    public double[] PosteriorMeanCoef2 { get; }

    /// <summary>
    /// Samples x_t ~ q(x_t | x_0): sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·noise. As in the original, the float64
    /// table entries are gathered, cast to float32 and broadcast; the arithmetic is in x0's dtype.
    /// </summary>
    /// <param name="x0">Clean images [B, ...].</param>
    /// <param name="t">Spaced step indices, int64 [B].</param>
    /// <param name="noise">Standard normal noise shaped like x0.</param>
    public Tensor QSample(Tensor x0, Tensor t, Tensor noise)
    {
        if (!x0.shape.SequenceEqual(noise.shape))
            throw new ArgumentException($"noise shape [{string.Join(", ", noise.shape)}] differs from x0 shape [{string.Join(", ", x0.shape)}].");
        using var scope = NewDisposeScope();
        var a = Extract(SqrtAlphasCumprod, t, x0);
        var b = Extract(SqrtOneMinusAlphasCumprod, t, x0);
        return (a * x0 + b * noise).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The original's <c>q_mean_variance</c>: q(x_t | x_0) = N(sqrt(ᾱ_t)·x0, (1 − ᾱ_t)·I), with the float64 tables
    /// gathered and cast to float32 first. The variance and log variance are [B, 1, ...] (they broadcast).
    /// </summary>
    /// <param name="x0">Clean images [B, ...].</param>
    /// <param name="t">Spaced step indices, int64 [B].</param>
    public (Tensor Mean, Tensor Variance, Tensor LogVariance) QMeanVariance(Tensor x0, Tensor t)
    {
        using var scope = NewDisposeScope();
        var mean = Extract(SqrtAlphasCumprod, t, x0) * x0;
        var variance = Extract(OneMinusAlphasCumprod, t, x0);
        var logVariance = Extract(LogOneMinusAlphasCumprod, t, x0);
        return (mean.MoveToOuterDisposeScope(), variance.MoveToOuterDisposeScope(), logVariance.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The timesteps a model or classifier receives for spaced steps <paramref name="t"/>, as the original's
    /// <c>_WrappedModel</c> computes them: t mapped through <see cref="TimestepMap"/> (int64), or with
    /// <see cref="RescaleTimesteps"/> float32(map[t]) · (1000 / <see cref="OriginalNumSteps"/>). It never rescales
    /// by the respaced step count.
    /// </summary>
    /// <param name="t">Spaced step indices [B] (integer).</param>
    /// <returns>A new tensor on <paramref name="t"/>'s device.</returns>
    public Tensor ModelTimesteps(Tensor t)
    {
        using var scope = NewDisposeScope();
        var indices = t.to_type(ScalarType.Int64);
        DeviceTables.CheckRange(indices, TimestepMap.Length);
        var result = DeviceTables.Int64(TimestepMap, t.device).gather(0, indices);
        if (RescaleTimesteps) result = result.to_type(ScalarType.Float32) * (1000.0 / OriginalNumSteps);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The original's <c>_extract_into_tensor</c>: gathers table[t] (float64), casts to float32, then to
    /// <paramref name="like"/>'s dtype, shaped [B, 1, 1, ...] for broadcasting. The table is gathered on
    /// <paramref name="like"/>'s device (a float32 copy made there once), where <paramref name="t"/> must be too.
    /// </summary>
    public static Tensor Extract(double[] table, Tensor t, Tensor like)
    {
        using var scope = NewDisposeScope();
        var indices = t.to_type(ScalarType.Int64);
        DeviceTables.CheckRange(indices, table.Length);
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[0] = indices.shape[0];
        // Gathered where the images are: t on another device than like is the caller's mistake and fails here.
        var values = DeviceTables.Float32(table, like.device).gather(0, indices);
        return values.reshape(shape).to(like.dtype).MoveToOuterDisposeScope();
    }

    private static double[] Map(double[] values, Func<double, double> f) => values.Select(f).ToArray();
}
