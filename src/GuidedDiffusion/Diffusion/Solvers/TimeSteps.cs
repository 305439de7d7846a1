namespace GuidedDiffusion.Diffusion.Solvers;

/// <summary>The solvers' time grids (the references' <c>get_time_steps</c> and the singlestep order split).</summary>
public static class TimeSteps
{
    /// <summary>
    /// N + 1 times from <paramref name="tStart"/> down to <paramref name="tEnd"/>: evenly in t (time_uniform), in λ
    /// (logSNR, mapped back with <see cref="DiscreteNoiseSchedule.InverseLambda"/>) or in √t (time_quadratic).
    /// </summary>
    /// <param name="schedule">The noise schedule.</param>
    /// <param name="skipType">The spacing.</param>
    /// <param name="tStart">t_T (the noisy end).</param>
    /// <param name="tEnd">t_0.</param>
    /// <param name="steps">N.</param>
    public static double[] Get(DiscreteNoiseSchedule schedule, SkipType skipType, double tStart, double tEnd, int steps)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "at least one step.");
        return skipType switch
        {
            SkipType.TimeUniform => Linspace(tStart, tEnd, steps + 1),
            SkipType.LogSnr => Linspace(schedule.MarginalLambda(tStart), schedule.MarginalLambda(tEnd), steps + 1)
                .Select(schedule.InverseLambda).ToArray(),
            SkipType.TimeQuadratic => Linspace(Math.Sqrt(tStart), Math.Sqrt(tEnd), steps + 1).Select(v => v * v).ToArray(),
            _ => throw new ArgumentOutOfRangeException(nameof(skipType), skipType, null),
        };
    }

    /// <summary>
    /// DPM-Solver's <c>get_orders_and_timesteps_for_singlestep_solver</c>: the orders of the outer steps (their sum
    /// is <paramref name="steps"/>: order 3 gives 3,…,3 then 2,1 / 1 / 2 by steps mod 3; order 2 gives 2,…,2 and a
    /// final 1 for odd steps) and the outer times: for logSNR K + 1 times evenly in λ, otherwise the
    /// <paramref name="steps"/>-step grid taken at the cumulative orders.
    /// </summary>
    /// <param name="schedule">The noise schedule.</param>
    /// <param name="steps">Model evaluations in all.</param>
    /// <param name="order">The highest order.</param>
    /// <param name="skipType">The spacing.</param>
    /// <param name="tStart">t_T.</param>
    /// <param name="tEnd">t_0.</param>
    public static (double[] Outer, int[] Orders) Singlestep(DiscreteNoiseSchedule schedule, int steps, int order, SkipType skipType, double tStart, double tEnd)
    {
        int[] orders;
        switch (order)
        {
            case 3:
                int k = steps / 3 + 1;
                orders = (steps % 3) switch
                {
                    0 => [.. Enumerable.Repeat(3, k - 2), 2, 1],
                    1 => [.. Enumerable.Repeat(3, k - 1), 1],
                    _ => [.. Enumerable.Repeat(3, k - 1), 2],
                };
                break;
            case 2:
                orders = steps % 2 == 0 ? Enumerable.Repeat(2, steps / 2).ToArray() : [.. Enumerable.Repeat(2, steps / 2), 1];
                break;
            case 1:
                orders = Enumerable.Repeat(1, steps).ToArray();
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(order), order, "order must be 1, 2 or 3.");
        }
        if (skipType == SkipType.LogSnr) return (Get(schedule, skipType, tStart, tEnd, orders.Length), orders);
        var grid = Get(schedule, skipType, tStart, tEnd, steps);
        var outer = new double[orders.Length + 1];
        for (int i = 0, at = 0; i <= orders.Length; i++)
        {
            outer[i] = grid[at];
            if (i < orders.Length) at += orders[i];
        }
        return (outer, orders);
    }

    /// <summary>torch.linspace's arithmetic: the first half counted up from the start, the second half down from the end.</summary>
    internal static double[] Linspace(double start, double end, int count)
    {
        if (count == 1) return [start];
        var values = new double[count];
        double step = (end - start) / (count - 1);
        int half = count / 2;
        for (int i = 0; i < count; i++)
            values[i] = i < half ? start + step * i : end - step * (count - 1 - i);
        return values;
    }
}
