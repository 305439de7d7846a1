namespace GuidedDiffusion.Distributed;

/// <summary>
/// Recognises a process started by an MPI launcher from the environment it sets.
/// </summary>
public static class MpiLaunch
{
    /// <summary>
    /// Variables set by launchers for each rank: Open MPI's mpirun (OMPI_COMM_WORLD_SIZE), PMIx-based
    /// launchers such as Open MPI 5 and Slurm's srun --mpi=pmix (PMIX_RANK), and MPICH/Hydra (PMI_RANK).
    /// </summary>
    public static IReadOnlyList<string> IndicatorVariables { get; } = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"];

    /// <summary>True when this process was started by an MPI launcher.</summary>
    public static bool IsDetected() => IsDetected(Environment.GetEnvironmentVariable);

    /// <summary>True when <paramref name="getVariable"/> shows any of <see cref="IndicatorVariables"/>.</summary>
    /// <param name="getVariable">Looks up an environment variable (null when unset); lets tests fake the environment.</param>
    public static bool IsDetected(Func<string, string?> getVariable)
    {
        ArgumentNullException.ThrowIfNull(getVariable);
        return IndicatorVariables.Any(name => !string.IsNullOrEmpty(getVariable(name)));
    }

    /// <summary>An integer environment variable, or null when it is unset or not a number.</summary>
    internal static int? ReadInt(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), out var value) ? value : null;
}
