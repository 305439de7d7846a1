namespace GuidedDiffusion.Training;

/// <summary>
/// A step produced a non-finite gradient norm (or loss) in a precision without loss scaling (fp32, bf16): the run
/// stops before the update, so no parameter, optimizer state or checkpoint ever holds the NaN. fp16 runs skip such
/// steps and lower the loss scale instead, as the original does.
/// </summary>
public sealed class NonFiniteTrainingException : InvalidOperationException
{
    /// <summary>Creates the exception for step <paramref name="step"/>.</summary>
    /// <param name="step">The step (0-based update index) that produced the value.</param>
    /// <param name="gradNorm">The gradient norm of that step.</param>
    /// <param name="lossKey">The loss metric's name (e.g. <c>train_loss</c>, <c>loss</c>).</param>
    /// <param name="loss">The step's loss, NaN when unknown.</param>
    public NonFiniteTrainingException(long step, double gradNorm, string lossKey, double loss)
        : base($"step {step}: grad_norm is {Format(gradNorm)} ({lossKey} {Format(loss)}); training stopped before the update, "
            + "so no checkpoint holds it. Likely causes: a learning rate too high for this model, or wrong gradients "
            + "from this CPU's native kernels — run 'guided-diffusion doctor' to check them.")
    {
        Step = step;
        GradNorm = gradNorm;
    }

    /// <summary>The step that produced the value.</summary>
    public long Step { get; }

    /// <summary>The non-finite gradient norm.</summary>
    public double GradNorm { get; }

    private static string Format(double value) =>
        double.IsNaN(value) ? "NaN" : double.IsInfinity(value) ? (value > 0 ? "inf" : "-inf") : value.ToString("G6", System.Globalization.CultureInfo.InvariantCulture);
}
