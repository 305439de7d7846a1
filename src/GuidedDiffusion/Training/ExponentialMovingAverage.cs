using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// An exponential moving average of the float32 master parameters, ema ← rate·ema + (1 − rate)·θ after
/// every update, as the original's image trainer keeps (its classifier trainer has none).
/// </summary>
public sealed class ExponentialMovingAverage : IDisposable
{
    private readonly IReadOnlyList<Parameter> _source;

    /// <summary>Starts the average at the current values of <paramref name="source"/>.</summary>
    public ExponentialMovingAverage(double rate, IReadOnlyList<Parameter> source)
    {
        Rate = rate;
        _source = source;
        using var noGrad = no_grad();
        Values = source.Select(p => p.detach().to_type(ScalarType.Float32).clone()).ToArray();
    }

    /// <summary>The decay rate.</summary>
    public double Rate { get; }

    /// <summary>The averaged values, aligned with the source parameters.</summary>
    public IReadOnlyList<Tensor> Values { get; }

    /// <summary>Folds the current parameters into the average.</summary>
    public void Update()
    {
        using var noGrad = no_grad();
        for (int i = 0; i < Values.Count; i++)
            Values[i].mul_(Rate).add_(_source[i], alpha: 1 - Rate);
    }

    /// <summary>Replaces the averaged values (resume).</summary>
    public void Load(IReadOnlyList<Tensor> values)
    {
        using var noGrad = no_grad();
        for (int i = 0; i < Values.Count; i++) Values[i].copy_(values[i]);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var v in Values) v.Dispose();
    }
}
