namespace GuidedDiffusion.Training;

/// <summary>
/// The progress.csv / log keys, named as the original writes them: <c>{prefix}_{metric}</c> and the per-quartile
/// <c>{prefix}_{metric}_q{0..3}</c>, where the quartile of step t is ⌊4t/T⌋.
/// </summary>
public static class MetricKeys
{
    /// <summary>Quartile of spaced step <paramref name="t"/> out of <paramref name="numTimesteps"/>.</summary>
    public static int Quartile(long t, int numTimesteps) => (int)(4 * t / numTimesteps);

    /// <summary>The metric names for a head with <paramref name="numClasses"/> outputs: loss, acc@1 and acc@5 when k ≤ classes.</summary>
    public static string[] Metrics(int numClasses) =>
        numClasses >= 5 ? new[] { "loss", "acc@1", "acc@5" } : new[] { "loss", "acc@1" };

    /// <summary>
    /// Every key a run can log, sorted ordinally — the fixed column order of our progress.csv (the original
    /// appends columns as keys first appear, so its order depends on the random timesteps).
    /// </summary>
    public static IReadOnlyList<string> All(int numClasses, bool withValidation, bool withLossScale)
    {
        var keys = new List<string> { "step", "samples", "grad_norm", "param_norm" };
        if (withLossScale) keys.Add("lg_loss_scale");
        foreach (var prefix in withValidation ? new[] { "train", "val" } : new[] { "train" })
            foreach (var metric in Metrics(numClasses))
                keys.AddRange(WithQuartiles($"{prefix}_{metric}"));
        keys.Sort(StringComparer.Ordinal);
        return keys;
    }

    /// <summary><paramref name="key"/> followed by its per-quartile keys <c>{key}_q0</c>..<c>{key}_q3</c>.</summary>
    public static IEnumerable<string> WithQuartiles(string key) =>
        new[] { key }.Concat(Enumerable.Range(0, 4).Select(q => $"{key}_q{q}"));

    /// <summary>
    /// Every key a diffusion-model run logs (the original TrainLoop's: step, samples, grad_norm, param_norm,
    /// lg_loss_scale with loss scaling, and each loss term with its quartiles), sorted ordinally.
    /// </summary>
    /// <param name="lossTerms">The loss terms, e.g. loss, mse, vb (<see cref="Diffusion.DiffusionLoss.TermNames"/>).</param>
    /// <param name="withLossScale">Whether lg_loss_scale is logged (fp16).</param>
    public static IReadOnlyList<string> ForDiffusion(IEnumerable<string> lossTerms, bool withLossScale)
    {
        var keys = new List<string> { "step", "samples", "grad_norm", "param_norm" };
        if (withLossScale) keys.Add("lg_loss_scale");
        foreach (var term in lossTerms)
        {
            keys.Add(term);
            for (int q = 0; q < 4; q++) keys.Add($"{term}_q{q}");
        }
        keys.Sort(StringComparer.Ordinal);
        return keys;
    }
}
