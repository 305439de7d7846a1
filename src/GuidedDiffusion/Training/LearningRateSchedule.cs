namespace GuidedDiffusion.Training;

/// <summary>The learning rate for each step: constant, or the original's linear annealing to zero.</summary>
public sealed record LearningRateSchedule(double BaseLr, bool Anneal, int? Iterations)
{
    /// <summary>lr for the update at (global) step <paramref name="step"/>: BaseLr·(1 − step/iterations) when annealing.</summary>
    /// <exception cref="InvalidOperationException">Annealing without an iteration count (<see cref="TrainingLength.Validate"/> refuses it).</exception>
    public double At(long step) => Anneal
        ? BaseLr * (1 - (double)step / (Iterations ?? throw new InvalidOperationException("annealing needs an iteration count.")))
        : BaseLr;
}
