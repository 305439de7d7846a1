namespace GuidedDiffusion.Evaluation;

/// <summary>What <see cref="TrainingCurvesJob"/> plots.</summary>
public sealed record TrainingCurvesOptions
{
    /// <summary>The run folder holding progress.csv (written by a training job); the PNGs go there too. Required.</summary>
    public string LogDir { get; init; } = "";
}

/// <summary>
/// The training curves of a run folder (the CLI's <c>plot</c>): <see cref="Plots.CurvesName"/> and, when the quartile
/// columns exist, <see cref="Plots.QuartileCurvesName"/>, drawn from its progress.csv by <see cref="Plots.TrainingCurves"/>.
/// </summary>
/// <param name="options">The run folder.</param>
public sealed class TrainingCurvesJob(TrainingCurvesOptions options)
{
    /// <summary>What this job plots.</summary>
    public TrainingCurvesOptions Options { get; } = options ?? throw new ArgumentNullException(nameof(options));

    /// <summary>Writes the PNGs and returns their paths.</summary>
    /// <exception cref="ConfigurationException">No log_dir given, or a progress.csv without loss or accuracy columns.</exception>
    /// <exception cref="FileNotFoundException">The folder has no progress.csv.</exception>
    public IReadOnlyList<string> Run()
    {
        if (Options.LogDir.Length == 0) throw new ConfigurationException("log_dir", "is required: the run folder holding progress.csv.");
        return Plots.TrainingCurves(Options.LogDir);
    }
}
