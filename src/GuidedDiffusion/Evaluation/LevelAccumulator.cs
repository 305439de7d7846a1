namespace GuidedDiffusion.Evaluation;

/// <summary>Running sums of one noise level's metrics; per-sample values come in, <see cref="Result"/> comes out.</summary>
internal sealed class LevelAccumulator(int timestep, int numClasses)
{
    private readonly List<double> _confidences = [];
    private readonly List<bool> _correct = [];
    private readonly long[] _classCorrect = new long[numClasses];
    private readonly long[] _classTotal = new long[numClasses];
    private long _samples, _correct1, _correct5, _gradCount, _robustSamples, _robustCorrect, _successes;
    private double _lossSum, _gradSum, _successL2Sum;

    /// <summary>Adds one sample: its true label, cross-entropy, predicted class, confidence (max probability) and top-5 hit.</summary>
    public void Add(int label, double loss, int predicted, double confidence, bool inTop5)
    {
        _samples++;
        _lossSum += loss;
        bool correct = predicted == label;
        if (correct) _correct1++;
        if (inTop5) _correct5++;
        _classTotal[label]++;
        if (correct) _classCorrect[label]++;
        _confidences.Add(confidence);
        _correct.Add(correct);
    }

    /// <summary>Adds one sample's ‖∇ₓ log p(y | x_t)‖₂.</summary>
    public void AddGradNorm(double norm)
    {
        _gradSum += norm;
        _gradCount++;
    }

    /// <summary>Adds one attacked sample: whether it is still classified correctly, and its ‖δ‖₂ if the attack succeeded.</summary>
    public void AddRobust(bool correct, double? successfulPerturbationL2)
    {
        _robustSamples++;
        if (correct) _robustCorrect++;
        if (successfulPerturbationL2 is { } l2)
        {
            _successes++;
            _successL2Sum += l2;
        }
    }

    /// <summary>The metrics over everything added.</summary>
    public NoiseLevelMetrics Result()
    {
        double n = Math.Max(_samples, 1);
        double ece = ExpectedCalibration.Compute(_confidences, _correct);
        var perClass = Enumerable.Range(0, numClasses)
            .Select(c => _classTotal[c] > 0 ? (double?)((double)_classCorrect[c] / _classTotal[c]) : null).ToArray();
        return new NoiseLevelMetrics(
            timestep, _samples, _lossSum / n, _correct1 / n, numClasses >= 5 ? _correct5 / n : null, ece,
            _gradCount > 0 ? _gradSum / _gradCount : null, perClass)
        {
            RobustAcc1 = _robustSamples > 0 ? (double)_robustCorrect / _robustSamples : null,
            AttackL2 = _successes > 0 ? _successL2Sum / _successes : null,
        };
    }
}
