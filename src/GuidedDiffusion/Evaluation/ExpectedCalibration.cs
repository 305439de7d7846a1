namespace GuidedDiffusion.Evaluation;

/// <summary>
/// Expected calibration error (Guo et al., 2017): samples are grouped by confidence (the top softmax probability) into
/// equal-width bins (i/B, (i+1)/B]; ECE = Σ_b (n_b / N)·|accuracy_b − mean confidence_b|.
/// </summary>
public static class ExpectedCalibration
{
    /// <summary>The bin of <paramref name="confidence"/> among <paramref name="bins"/> equal-width bins (0 falls in bin 0).</summary>
    public static int BinOf(double confidence, int bins) =>
        Math.Clamp((int)Math.Ceiling(confidence * bins) - 1, 0, bins - 1);

    /// <summary>The ECE of samples with the given confidences and correctness; 0 for no samples.</summary>
    /// <param name="confidences">Top-1 probability of each sample, in [0, 1].</param>
    /// <param name="correct">Whether each sample's top-1 class is its label.</param>
    /// <param name="bins">Number of equal-width confidence bins. Default <see cref="EvaluationOptions.EceBins"/>.</param>
    public static double Compute(IReadOnlyList<double> confidences, IReadOnlyList<bool> correct, int bins = EvaluationOptions.EceBins)
    {
        ArgumentNullException.ThrowIfNull(confidences);
        ArgumentNullException.ThrowIfNull(correct);
        if (confidences.Count != correct.Count)
            throw new ArgumentException($"{confidences.Count} confidences but {correct.Count} correctness flags.", nameof(correct));
        ArgumentOutOfRangeException.ThrowIfLessThan(bins, 1);
        var count = new long[bins];
        var confidenceSum = new double[bins];
        var correctCount = new long[bins];
        for (int i = 0; i < confidences.Count; i++)
        {
            int b = BinOf(confidences[i], bins);
            count[b]++;
            confidenceSum[b] += confidences[i];
            if (correct[i]) correctCount[b]++;
        }
        double n = confidences.Count, ece = 0;
        for (int b = 0; b < bins; b++)
            if (count[b] > 0)
                ece += count[b] / n * Math.Abs((double)correctCount[b] / count[b] - confidenceSum[b] / count[b]);
        return ece;
    }
}
