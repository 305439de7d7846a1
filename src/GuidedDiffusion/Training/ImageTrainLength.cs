namespace GuidedDiffusion.Training;

/// <summary>
/// How long image_train.py trains: <see cref="LrAnnealSteps"/> (the original's: anneal the learning rate to 0 over
/// that many updates and stop), or our <see cref="Iterations"/> (stop at a constant learning rate), or, with
/// neither, until stopped.
/// </summary>
public sealed record ImageTrainLength
{
    /// <summary><c>lr_anneal_steps</c>: anneal over this many updates and stop there; 0: no annealing. Default 0.</summary>
    public int LrAnnealSteps { get; init; }

    /// <summary><c>iterations</c>: stop after this many updates at a constant learning rate; 0: no limit of its own. Default 0.</summary>
    public int Iterations { get; init; }

    /// <summary>This length as the training settings hold it: the iteration count (null: until stopped) and annealing.</summary>
    /// <exception cref="ConfigurationException">A negative count, or both counts given.</exception>
    public TrainingLength ToLength()
    {
        if (LrAnnealSteps < 0) throw new ConfigurationException("lr_anneal_steps", $"must be ≥ 0 (0: no annealing), got {LrAnnealSteps}.");
        if (Iterations < 0) throw new ConfigurationException("iterations", $"must be ≥ 0 (0: no limit of its own), got {Iterations}.");
        if (LrAnnealSteps > 0 && Iterations > 0)
            throw new ConfigurationException("iterations", $"give either {SettingText.Ref("lr_anneal_steps")} (anneal and stop there) or {SettingText.Ref("iterations")} (constant lr), not both.");
        return new TrainingLength
        {
            AnnealLr = LrAnnealSteps > 0,
            Iterations = LrAnnealSteps > 0 ? LrAnnealSteps : Iterations > 0 ? Iterations : null,
        };
    }
}
