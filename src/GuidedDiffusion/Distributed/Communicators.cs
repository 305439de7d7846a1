namespace GuidedDiffusion.Distributed;

/// <summary>
/// The one place that chooses a communicator, and the failure policy for distributed runs.
/// </summary>
public static class Communicators
{
    /// <summary>Use MPI when the process was started by mpiexec/mpirun, otherwise a single process.</summary>
    public const string Auto = "auto";

    /// <summary>Always a single process, even under mpiexec (every rank then trains alone).</summary>
    public const string None = "none";

    /// <summary>Always MPI; fails clearly when Open MPI is not installed.</summary>
    public const string Mpi = "mpi";

    /// <summary>The accepted modes, for help texts and error messages.</summary>
    public static IReadOnlyList<string> Modes { get; } = [Auto, None, Mpi];

    /// <summary>Creates the communicator for <paramref name="mode"/>.</summary>
    /// <param name="mode"><see cref="Auto"/>, <see cref="None"/> or <see cref="Mpi"/> (case-insensitive).</param>
    /// <exception cref="ArgumentException">An unknown mode.</exception>
    /// <exception cref="MpiUnavailableException">MPI was chosen but Open MPI's library cannot be loaded.</exception>
    public static ICommunicator Create(string mode)
    {
        ArgumentNullException.ThrowIfNull(mode);
        return mode.Trim().ToLowerInvariant() switch
        {
            Auto => MpiLaunch.IsDetected() ? MpiCommunicator.Initialize() : new SingleProcessCommunicator(),
            None => new SingleProcessCommunicator(),
            Mpi => MpiCommunicator.Initialize(),
            _ => throw new ArgumentException(
                $"Unknown distributed mode '{mode}'; expected one of: {string.Join(", ", Modes)}.", nameof(mode)),
        };
    }

    /// <summary>
    /// Runs <paramref name="body"/> and turns an exception on any rank into a clean stop of the whole job:
    /// prints <c>rank R: message</c> to stderr and, with more than one rank, calls
    /// <see cref="ICommunicator.Abort"/> so that the other ranks, which would wait forever in their next
    /// collective, are terminated too.
    /// </summary>
    /// <param name="communicator">The run's communicator.</param>
    /// <param name="body">The work; returns the process exit code.</param>
    /// <param name="errorCode">The exit code for a failure.</param>
    /// <param name="printStackTrace">Also print the exception's type and stack (for bugs rather than user errors).</param>
    /// <returns>The body's exit code, or <paramref name="errorCode"/> after a failure on a single process.</returns>
    public static int RunGuarded(ICommunicator communicator, Func<int> body, int errorCode = 1, bool printStackTrace = false)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(body);
        try
        {
            return body();
        }
        catch (Exception exception)
        {
            Console.Error.WriteLine($"rank {communicator.Rank}: {exception.Message}");
            if (printStackTrace)
            {
                Console.Error.WriteLine(exception.ToString());
            }
            if (communicator.WorldSize > 1)
            {
                communicator.Abort(errorCode);
            }
            return errorCode;
        }
    }
}
