namespace GuidedDiffusion.Training;

/// <summary>
/// How long a run trains and whether its learning rate anneals: classifier_train.py's <c>iterations</c> and
/// <c>anneal_lr</c>, with its defaults. image-train spells it as <see cref="ImageTrainLength"/>.
/// </summary>
public sealed record TrainingLength
{
    /// <summary><c>iterations</c>: optimizer updates in the run; null: until stopped (image-train without a length). Default 150000.</summary>
    public int? Iterations { get; init; } = 150000;

    /// <summary><c>anneal_lr</c>: decay lr linearly to 0 over the iterations. Default false.</summary>
    public bool AnnealLr { get; init; }

    /// <summary>Trains until stopped at a constant learning rate (image_train.py without <c>lr_anneal_steps</c>).</summary>
    public static TrainingLength UntilStopped { get; } = new() { Iterations = null };

    /// <summary>Rejects values that cannot work, naming the setting.</summary>
    /// <exception cref="ConfigurationException">No updates, or annealing without an end.</exception>
    public void Validate()
    {
        if (Iterations < 1) throw new ConfigurationException("iterations", $"must be at least 1, got {Iterations}.");
        if (AnnealLr && Iterations is null) throw new ConfigurationException("anneal_lr", $"annealing needs {SettingText.Ref("iterations")}: the learning rate reaches 0 there.");
    }
}
