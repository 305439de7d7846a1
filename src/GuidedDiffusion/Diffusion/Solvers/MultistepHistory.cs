using static TorchSharp.torch;

namespace GuidedDiffusion.Diffusion.Solvers;

/// <summary>The model outputs and times a multistep solver keeps: the last <c>order</c> of them, oldest first.</summary>
internal static class MultistepHistory
{
    /// <summary>
    /// After step <paramref name="step"/>: drops (and disposes) the oldest entry once the history holds
    /// <paramref name="order"/>, then appends time <paramref name="t"/> and the model output <paramref name="evaluate"/> gives.
    /// </summary>
    public static void Advance(List<double> tPrev, List<Tensor> mPrev, int step, int order, double t, Func<Tensor> evaluate)
    {
        if (step >= order)
        {
            tPrev.RemoveAt(0);
            mPrev[0].Dispose();
            mPrev.RemoveAt(0);
        }
        tPrev.Add(t);
        mPrev.Add(evaluate());
    }
}
