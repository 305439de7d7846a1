using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Diffusion.Solvers;

/// <summary>
/// DPM-Solver and DPM-Solver++ (Lu et al. 2022), ported from the reference <c>dpm_solver_pytorch.py</c>
/// (<c>DPM_Solver.sample</c> with <c>solver_type='dpmsolver'</c>): first-, second- and third-order multistep and
/// singlestep updates in λ = log(α/σ), on ε (DPM-Solver) or on x₀ (DPM-Solver++, with optional dynamic thresholding).
/// DPM-Solver++(2M) is multistep order 2, (3M) multistep order 3, (2S) singlestep order 2. The integration runs from
/// t_T = 1 to t_0 = 1/N and the result is x at t_0 (no final denoising step, as the reference's default).
/// Scalars are float64; the tensor arithmetic runs in x's dtype.
/// </summary>
public static class DpmSolver
{
    /// <summary>Integrates the probability-flow ODE from <paramref name="xT"/> at t = 1 to t = 1/N.</summary>
    /// <param name="eps">The noise prediction (guidance already wrapped in).</param>
    /// <param name="schedule">The schedule.</param>
    /// <param name="xT">The starting noise [B, C, H, W] (not modified).</param>
    /// <param name="options">The solver settings (<see cref="SolverOptions.Kind"/> DpmSolver or DpmSolverPlusPlus).</param>
    /// <param name="onStep">Called after every (outer) step with the state reached.</param>
    /// <returns>x at t_0, a new tensor.</returns>
    public static Tensor Sample(NoisePredictionFn eps, DiscreteNoiseSchedule schedule, Tensor xT, SolverOptions options, Action<SolverStep>? onStep = null)
    {
        options.Validate();
        if (options.Kind == SolverKind.UniPC) throw new ArgumentException("UniPC settings given to DpmSolver; call UniPC.Sample.", nameof(options));
        var model = new SolverModel(eps, schedule, options, options.Kind == SolverKind.DpmSolverPlusPlus);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var x = options.Method == SolverMethod.Multistep
            ? Multistep(model, schedule, xT.clone(), options, onStep)
            : Singlestep(model, schedule, xT.clone(), options, onStep);
        return x.MoveToOuterDisposeScope();
    }

    private static Tensor Multistep(SolverModel model, DiscreteNoiseSchedule ns, Tensor x, SolverOptions o, Action<SolverStep>? onStep)
    {
        int steps = o.Steps, order = o.Order;
        var times = TimeSteps.Get(ns, o.SkipType, ns.T, ns.TEnd, steps);
        var tPrev = new List<double> { times[0] };
        var mPrev = new List<Tensor> { model.Evaluate(x, times[0]) };
        for (int step = 1; step <= steps; step++)
        {
            double t = times[step];
            // Warm-up steps run at their own order; the reference lowers the final orders only below 10 steps.
            int stepOrder = step < order ? step
                : o.LowerOrderFinal && steps < 10 ? Math.Min(order, steps + 1 - step) : order;
            x = Replace(x, () => MultistepUpdate(model, ns, x, mPrev, tPrev, t, stepOrder));
            onStep?.Invoke(new SolverStep(step, steps, t, x));
            if (step == steps) break;
            MultistepHistory.Advance(tPrev, mPrev, step, order, t, () => model.Evaluate(x, t));
        }
        return x;
    }

    private static Tensor Singlestep(SolverModel model, DiscreteNoiseSchedule ns, Tensor x, SolverOptions o, Action<SolverStep>? onStep)
    {
        var (outer, orders) = TimeSteps.Singlestep(ns, o.Steps, o.Order, o.SkipType, ns.T, ns.TEnd);
        for (int step = 0; step < orders.Length; step++)
        {
            double s = outer[step], t = outer[step + 1];
            int order = orders[step];
            var inner = TimeSteps.Get(ns, o.SkipType, s, t, order).Select(ns.MarginalLambda).ToArray();
            double h = inner[^1] - inner[0];
            double r1 = order >= 2 ? (inner[1] - inner[0]) / h : 0.5;
            double r2 = order >= 3 ? (inner[2] - inner[0]) / h : 2.0 / 3.0;
            x = Replace(x, () => order switch
            {
                1 => FirstUpdate(model, ns, x, s, t, null),
                2 => SinglestepSecondUpdate(model, ns, x, s, t, r1),
                _ => SinglestepThirdUpdate(model, ns, x, s, t, r1, r2),
            });
            onStep?.Invoke(new SolverStep(step + 1, orders.Length, t, x));
        }
        return x;
    }

    /// <summary>Runs <paramref name="update"/> in its own dispose scope, keeps its result and disposes <paramref name="old"/>.</summary>
    internal static Tensor Replace(Tensor old, Func<Tensor> update)
    {
        Tensor next;
        using (var scope = NewDisposeScope()) next = update().MoveToOuterDisposeScope();
        old.Dispose();
        return next;
    }

    internal static double Expm1(double v) => Math.Abs(v) < 1e-5 ? v + v * v / 2 + v * v * v / 6 : Math.Exp(v) - 1.0;

    private static Tensor MultistepUpdate(SolverModel model, DiscreteNoiseSchedule ns, Tensor x, List<Tensor> mPrev, List<double> tPrev, double t, int order) =>
        order switch
        {
            1 => FirstUpdate(model, ns, x, tPrev[^1], t, mPrev[^1]),
            2 => MultistepSecondUpdate(model.PredictsData, ns, x, mPrev, tPrev, t),
            _ => MultistepThirdUpdate(model.PredictsData, ns, x, mPrev, tPrev, t),
        };

    /// <summary>DPM-Solver-1 (DDIM): the first-order update from s to t.</summary>
    private static Tensor FirstUpdate(SolverModel model, DiscreteNoiseSchedule ns, Tensor x, double s, double t, Tensor? modelS)
    {
        double h = ns.MarginalLambda(t) - ns.MarginalLambda(s);
        var ms = modelS ?? model.Evaluate(x, s);
        return model.PredictsData
            ? ns.MarginalStd(t) / ns.MarginalStd(s) * x - ns.MarginalAlpha(t) * Expm1(-h) * ms
            : Math.Exp(ns.MarginalLogMeanCoeff(t) - ns.MarginalLogMeanCoeff(s)) * x - ns.MarginalStd(t) * Expm1(h) * ms;
    }

    private static Tensor MultistepSecondUpdate(bool data, DiscreteNoiseSchedule ns, Tensor x, List<Tensor> mPrev, List<double> tPrev, double t)
    {
        var (m1, m0) = (mPrev[^2], mPrev[^1]);
        var (t1, t0) = (tPrev[^2], tPrev[^1]);
        double lambda1 = ns.MarginalLambda(t1), lambda0 = ns.MarginalLambda(t0), lambdaT = ns.MarginalLambda(t);
        double h0 = lambda0 - lambda1, h = lambdaT - lambda0, r0 = h0 / h;
        var d1 = (1.0 / r0) * (m0 - m1);
        if (data)
        {
            double phi1 = Expm1(-h), alphaT = ns.MarginalAlpha(t);
            return ns.MarginalStd(t) / ns.MarginalStd(t0) * x - alphaT * phi1 * m0 - 0.5 * (alphaT * phi1) * d1;
        }
        else
        {
            double phi1 = Expm1(h), sigmaT = ns.MarginalStd(t);
            return Math.Exp(ns.MarginalLogMeanCoeff(t) - ns.MarginalLogMeanCoeff(t0)) * x - sigmaT * phi1 * m0 - 0.5 * (sigmaT * phi1) * d1;
        }
    }

    private static Tensor MultistepThirdUpdate(bool data, DiscreteNoiseSchedule ns, Tensor x, List<Tensor> mPrev, List<double> tPrev, double t)
    {
        var (m2, m1, m0) = (mPrev[^3], mPrev[^2], mPrev[^1]);
        var (t2, t1, t0) = (tPrev[^3], tPrev[^2], tPrev[^1]);
        double lambda2 = ns.MarginalLambda(t2), lambda1 = ns.MarginalLambda(t1), lambda0 = ns.MarginalLambda(t0), lambdaT = ns.MarginalLambda(t);
        double h1 = lambda1 - lambda2, h0 = lambda0 - lambda1, h = lambdaT - lambda0;
        double r0 = h0 / h, r1 = h1 / h;
        var d10 = (1.0 / r0) * (m0 - m1);
        var d11 = (1.0 / r1) * (m1 - m2);
        var d1 = d10 + (r0 / (r0 + r1)) * (d10 - d11);
        var d2 = (1.0 / (r0 + r1)) * (d10 - d11);
        if (data)
        {
            double phi1 = Expm1(-h), phi2 = phi1 / h + 1.0, phi3 = phi2 / h - 0.5, alphaT = ns.MarginalAlpha(t);
            return ns.MarginalStd(t) / ns.MarginalStd(t0) * x - alphaT * phi1 * m0 + alphaT * phi2 * d1 - alphaT * phi3 * d2;
        }
        else
        {
            double phi1 = Expm1(h), phi2 = phi1 / h - 1.0, phi3 = phi2 / h - 0.5, sigmaT = ns.MarginalStd(t);
            return Math.Exp(ns.MarginalLogMeanCoeff(t) - ns.MarginalLogMeanCoeff(t0)) * x - sigmaT * phi1 * m0 - sigmaT * phi2 * d1 - sigmaT * phi3 * d2;
        }
    }

    private static Tensor SinglestepSecondUpdate(SolverModel model, DiscreteNoiseSchedule ns, Tensor x, double s, double t, double r1)
    {
        double lambdaS = ns.MarginalLambda(s), h = ns.MarginalLambda(t) - lambdaS;
        double s1 = ns.InverseLambda(lambdaS + r1 * h);
        double laS = ns.MarginalLogMeanCoeff(s), laS1 = ns.MarginalLogMeanCoeff(s1), laT = ns.MarginalLogMeanCoeff(t);
        double sigmaS = ns.MarginalStd(s), sigmaS1 = ns.MarginalStd(s1), sigmaT = ns.MarginalStd(t);
        double alphaS1 = Math.Exp(laS1), alphaT = Math.Exp(laT);
        var ms = model.Evaluate(x, s);
        if (model.PredictsData)
        {
            double phi11 = Expm1(-r1 * h), phi1 = Expm1(-h);
            var xs1 = sigmaS1 / sigmaS * x - alphaS1 * phi11 * ms;
            var ms1 = model.Evaluate(xs1, s1);
            return sigmaT / sigmaS * x - alphaT * phi1 * ms - 0.5 / r1 * (alphaT * phi1) * (ms1 - ms);
        }
        else
        {
            double phi11 = Expm1(r1 * h), phi1 = Expm1(h);
            var xs1 = Math.Exp(laS1 - laS) * x - sigmaS1 * phi11 * ms;
            var ms1 = model.Evaluate(xs1, s1);
            return Math.Exp(laT - laS) * x - sigmaT * phi1 * ms - 0.5 / r1 * (sigmaT * phi1) * (ms1 - ms);
        }
    }

    private static Tensor SinglestepThirdUpdate(SolverModel model, DiscreteNoiseSchedule ns, Tensor x, double s, double t, double r1, double r2)
    {
        double lambdaS = ns.MarginalLambda(s), h = ns.MarginalLambda(t) - lambdaS;
        double s1 = ns.InverseLambda(lambdaS + r1 * h), s2 = ns.InverseLambda(lambdaS + r2 * h);
        double laS = ns.MarginalLogMeanCoeff(s), laS1 = ns.MarginalLogMeanCoeff(s1), laS2 = ns.MarginalLogMeanCoeff(s2), laT = ns.MarginalLogMeanCoeff(t);
        double sigmaS = ns.MarginalStd(s), sigmaS1 = ns.MarginalStd(s1), sigmaS2 = ns.MarginalStd(s2), sigmaT = ns.MarginalStd(t);
        double alphaS1 = Math.Exp(laS1), alphaS2 = Math.Exp(laS2), alphaT = Math.Exp(laT);
        var ms = model.Evaluate(x, s);
        if (model.PredictsData)
        {
            double phi11 = Expm1(-r1 * h), phi12 = Expm1(-r2 * h), phi1 = Expm1(-h);
            double phi22 = Expm1(-r2 * h) / (r2 * h) + 1.0, phi2 = phi1 / h + 1.0;
            var xs1 = sigmaS1 / sigmaS * x - alphaS1 * phi11 * ms;
            var ms1 = model.Evaluate(xs1, s1);
            var xs2 = sigmaS2 / sigmaS * x - alphaS2 * phi12 * ms + r2 / r1 * (alphaS2 * phi22) * (ms1 - ms);
            var ms2 = model.Evaluate(xs2, s2);
            return sigmaT / sigmaS * x - alphaT * phi1 * ms + 1.0 / r2 * (alphaT * phi2) * (ms2 - ms);
        }
        else
        {
            double phi11 = Expm1(r1 * h), phi12 = Expm1(r2 * h), phi1 = Expm1(h);
            double phi22 = Expm1(r2 * h) / (r2 * h) - 1.0, phi2 = phi1 / h - 1.0;
            var xs1 = Math.Exp(laS1 - laS) * x - sigmaS1 * phi11 * ms;
            var ms1 = model.Evaluate(xs1, s1);
            var xs2 = Math.Exp(laS2 - laS) * x - sigmaS2 * phi12 * ms - r2 / r1 * (sigmaS2 * phi22) * (ms1 - ms);
            var ms2 = model.Evaluate(xs2, s2);
            return Math.Exp(laT - laS) * x - sigmaT * phi1 * ms - 1.0 / r2 * (sigmaT * phi2) * (ms2 - ms);
        }
    }
}
