using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Diffusion.Solvers;

/// <summary>
/// UniPC (Zhao et al. 2023), ported from the reference <c>uni_pc.py</c> (<c>UniPC.sample</c>, method multistep,
/// variants bh1 and bh2): a multistep predictor (UniP) whose result is corrected (UniC) with the model output at the
/// predicted point, which the next step reuses, so each step costs one model evaluation and the last step is not
/// corrected. Works on x₀ (data prediction, the default, with optional dynamic thresholding) or on ε. Orders above
/// the steps taken so far are lowered for the first steps, and with <see cref="SolverOptions.LowerOrderFinal"/> for
/// the last ones. Scalars (and the small linear systems for the coefficients) are float64.
/// </summary>
public static class UniPC
{
    /// <summary>Integrates the probability-flow ODE from <paramref name="xT"/> at t = 1 to t = 1/N.</summary>
    /// <param name="eps">The noise prediction (guidance already wrapped in).</param>
    /// <param name="schedule">The schedule (the reference's UniPC does not clip λ: build it with clipLambda false for parity).</param>
    /// <param name="xT">The starting noise (not modified).</param>
    /// <param name="options">The settings (<see cref="SolverOptions.Kind"/> UniPC).</param>
    /// <param name="onStep">Called after every step with the state reached.</param>
    /// <returns>x at t_0, a new tensor.</returns>
    public static Tensor Sample(NoisePredictionFn eps, DiscreteNoiseSchedule schedule, Tensor xT, SolverOptions options, Action<SolverStep>? onStep = null)
    {
        options.Validate();
        if (options.Kind != SolverKind.UniPC) throw new ArgumentException($"{options.Kind.Spelling()} settings given to UniPC; call DpmSolver.Sample.", nameof(options));
        var model = new SolverModel(eps, schedule, options, options.UniPCPredictX0);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        int steps = options.Steps, order = options.Order;
        var times = TimeSteps.Get(schedule, options.SkipType, schedule.T, schedule.TEnd, steps);
        var x = xT.clone();
        var tPrev = new List<double> { times[0] };
        var mPrev = new List<Tensor> { model.Evaluate(x, times[0]) };
        for (int step = 1; step <= steps; step++)
        {
            double t = times[step];
            int stepOrder = step < order ? step
                : options.LowerOrderFinal ? Math.Min(order, steps + 1 - step) : order;
            bool useCorrector = step < steps;
            Tensor? modelT = null;
            x = DpmSolver.Replace(x, () =>
            {
                var (next, evaluated) = Update(model, schedule, options.Variant, x, mPrev, tPrev, t, stepOrder, useCorrector);
                modelT = evaluated?.MoveToOuterDisposeScope();
                return next;
            });
            onStep?.Invoke(new SolverStep(step, steps, t, x));
            if (step == steps) break;
            MultistepHistory.Advance(tPrev, mPrev, step, order, t, () => modelT ?? model.Evaluate(x, t));
        }
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>multistep_uni_pc_bh_update</c>: the predictor from the last <paramref name="order"/> model outputs, then, with
    /// <paramref name="useCorrector"/>, the corrector using the model output at the predicted point (returned for reuse).
    /// </summary>
    private static (Tensor X, Tensor? ModelT) Update(SolverModel model, DiscreteNoiseSchedule ns, UniPCVariant variant, Tensor x,
        List<Tensor> mPrev, List<double> tPrev, double t, int order, bool useCorrector)
    {
        double t0 = tPrev[^1];
        double lambda0 = ns.MarginalLambda(t0), lambdaT = ns.MarginalLambda(t);
        var m0 = mPrev[^1];
        double sigma0 = ns.MarginalStd(t0), sigmaT = ns.MarginalStd(t);
        double logAlpha0 = ns.MarginalLogMeanCoeff(t0), logAlphaT = ns.MarginalLogMeanCoeff(t);
        double alphaT = Math.Exp(logAlphaT);
        double h = lambdaT - lambda0;

        var rks = new List<double>();
        var d1s = new List<Tensor>();
        for (int i = 1; i < order; i++)
        {
            double rk = (ns.MarginalLambda(tPrev[^(i + 1)]) - lambda0) / h;
            rks.Add(rk);
            d1s.Add((mPrev[^(i + 1)] - m0) / rk);
        }
        rks.Add(1.0);

        double hh = model.PredictsData ? -h : h;
        double hPhi1 = DpmSolver.Expm1(hh);
        double hPhiK = hPhi1 / hh - 1.0;
        double factorial = 1.0;
        double bH = variant == UniPCVariant.Bh1 ? hh : DpmSolver.Expm1(hh);
        var r = new double[order, order];
        var b = new double[order];
        for (int i = 1; i <= order; i++)
        {
            for (int k = 0; k < order; k++) r[i - 1, k] = Math.Pow(rks[k], i - 1);
            b[i - 1] = hPhiK * factorial / bH;
            factorial *= i + 1;
            hPhiK = hPhiK / hh - 1.0 / factorial;
        }

        double[]? rhosP = d1s.Count == 0 ? null : order == 2 ? [0.5] : Solve(r, b, order - 1);
        double[]? rhosC = useCorrector ? (order == 1 ? [0.5] : Solve(r, b, order)) : null;

        // x_t_ in the reference: the first-order (DDIM) part both predictor and corrector start from.
        double scale = model.PredictsData ? alphaT : sigmaT;
        var xBase = model.PredictsData
            ? sigmaT / sigma0 * x - alphaT * hPhi1 * m0
            : Math.Exp(logAlphaT - logAlpha0) * x - sigmaT * hPhi1 * m0;
        var xT = rhosP is null ? xBase : xBase - scale * bH * Combine(rhosP, d1s);
        if (rhosC is null) return (xT, null);
        var modelT = model.Evaluate(xT, t);
        var d1T = modelT - m0;
        var correction = d1s.Count == 0 ? rhosC[^1] * d1T : Combine(rhosC, d1s) + rhosC[^1] * d1T;
        return (xBase - scale * bH * correction, modelT);
    }

    /// <summary>Σ_k ρ_k·D_k over the D's given (ρ may have one more entry, for the corrector's own term).</summary>
    private static Tensor Combine(double[] rhos, List<Tensor> d1s)
    {
        var sum = rhos[0] * d1s[0];
        for (int k = 1; k < d1s.Count; k++) sum = sum + rhos[k] * d1s[k];
        return sum;
    }

    /// <summary>Solves the leading n×n block of R·ρ = b (n ≤ 3) by Gaussian elimination with partial pivoting.</summary>
    private static double[] Solve(double[,] r, double[] b, int n)
    {
        var a = new double[n, n + 1];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++) a[i, j] = r[i, j];
            a[i, n] = b[i];
        }
        for (int col = 0; col < n; col++)
        {
            int pivot = col;
            for (int i = col + 1; i < n; i++) if (Math.Abs(a[i, col]) > Math.Abs(a[pivot, col])) pivot = i;
            for (int j = 0; j <= n; j++) (a[col, j], a[pivot, j]) = (a[pivot, j], a[col, j]);
            for (int i = col + 1; i < n; i++)
            {
                double f = a[i, col] / a[col, col];
                for (int j = col; j <= n; j++) a[i, j] -= f * a[col, j];
            }
        }
        var x = new double[n];
        for (int i = n - 1; i >= 0; i--)
        {
            double v = a[i, n];
            for (int j = i + 1; j < n; j++) v -= a[i, j] * x[j];
            x[i] = v / a[i, i];
        }
        return x;
    }
}
