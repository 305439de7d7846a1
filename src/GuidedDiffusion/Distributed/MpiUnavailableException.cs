namespace GuidedDiffusion.Distributed;

/// <summary>
/// MPI was requested (or a launch under mpiexec was detected) but Open MPI's library cannot be used:
/// it is not installed, is not Open MPI, or MPI was already shut down in this process.
/// </summary>
public sealed class MpiUnavailableException : Exception
{
    /// <summary>Creates the exception with a message that says what to install or change.</summary>
    public MpiUnavailableException(string message)
        : base(message)
    {
    }
}
