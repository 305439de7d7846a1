using static TorchSharp.torch;

namespace GuidedDiffusion.Evaluation;

/// <summary>
/// A diversity figure of images of one class: the mean pairwise L2 distance between their feature vectors (for
/// samples, a judge's penultimate features), computed per class and averaged over the classes with at least two
/// images. Guidance that collapses a class onto a few modes lowers it; comparing it with the same figure for real
/// images shows what guidance trades for agreement.
/// </summary>
public static class FeatureDiversity
{
    /// <summary>Elements of the [rows, n, F] difference block computed at once (bounds the memory of large classes).</summary>
    private const long BlockElements = 1L << 24;

    /// <summary>
    /// Mean over classes of the mean pairwise distance ‖f_i − f_j‖₂ (i ≠ j) within each class, in float64.
    /// </summary>
    /// <param name="features">[N, F] features (any floating dtype, any device).</param>
    /// <param name="labels">The class of each row.</param>
    /// <param name="classes">Number of classes; labels must lie in [0, classes).</param>
    /// <returns>The mean over classes with two or more rows (NaN when none has), and per class its mean
    /// distance (NaN below two rows).</returns>
    /// <exception cref="ArgumentException">The features are not [N, F] with N = labels, or a label is out of range.</exception>
    public static (double Mean, IReadOnlyList<double> PerClass) Measure(Tensor features, IReadOnlyList<long> labels, int classes)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        if (features.dim() != 2 || features.shape[0] != labels.Count)
            throw new ArgumentException($"features must be [{labels.Count}, F] for {labels.Count} labels, got [{string.Join(", ", features.shape)}].", nameof(features));
        foreach (var label in labels)
            if (label < 0 || label >= classes)
                throw new ArgumentException($"label {label} is outside [0, {classes}).", nameof(labels));

        var perClass = new double[classes];
        using var scope = NewDisposeScope();
        var all = features.detach().to(CPU).to_type(ScalarType.Float64);
        for (int c = 0; c < classes; c++)
        {
            var rows = Enumerable.Range(0, labels.Count).Where(i => labels[i] == c).Select(i => (long)i).ToArray();
            perClass[c] = rows.Length < 2 ? double.NaN : MeanPairwiseDistance(all.index_select(0, tensor(rows)));
        }
        var counted = perClass.Where(d => !double.IsNaN(d)).ToArray();
        return (counted.Length == 0 ? double.NaN : counted.Average(), perClass);
    }

    /// <summary>Mean of ‖f_i − f_j‖₂ over ordered pairs i ≠ j of f [n, F], n ≥ 2; exact differences (not the
    /// ‖a‖² + ‖b‖² − 2ab expansion), so identical rows give exactly 0.</summary>
    private static double MeanPairwiseDistance(Tensor f)
    {
        long n = f.shape[0], width = Math.Max(1, f.shape[1]);
        long block = Math.Max(1, BlockElements / (n * width));
        double sum = 0;
        for (long start = 0; start < n; start += block)
        {
            using var scope = NewDisposeScope();
            var rows = f.narrow(0, start, Math.Min(block, n - start));
            sum += (rows.unsqueeze(1) - f.unsqueeze(0)).square().sum(-1).sqrt().sum().item<double>();
        }
        return sum / (n * (n - 1));
    }
}
