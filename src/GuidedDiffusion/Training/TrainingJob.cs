using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Distributed;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// What both training scripts take besides their model's architecture: the loop settings, the noise process,
/// how the job runs (<see cref="RunContext"/>) and the data-parallel group. <see cref="ClassifierTrainingJob"/> and
/// <see cref="ImageTrainingJob"/> add the architecture and the work (through <see cref="TrainingSession"/>).
/// </summary>
public abstract class TrainingJob
{
    /// <summary>Prepares a job; <c>Run</c> does the work.</summary>
    /// <param name="training">Loop settings.</param>
    /// <param name="diffusion">Noise process (and, for a diffusion model, loss) settings.</param>
    /// <param name="run">The device, where progress tables and warnings go, how settings are spelled in them, the
    /// decoder's pixel limit (null: a default <see cref="RunContext"/>: the CPU, no lines).</param>
    /// <param name="communicator">Data-parallel group (null: a single process). The batch size is per rank.</param>
    private protected TrainingJob(TrainingConfig training, DiffusionConfig diffusion, RunContext? run, ICommunicator? communicator)
    {
        Training = training;
        Diffusion = diffusion;
        Context = run ?? new RunContext();
        Communicator = communicator ?? new SingleProcessCommunicator();
    }

    /// <summary>The loop settings as given (the session may adjust them on resume).</summary>
    public TrainingConfig Training { get; }

    /// <summary>The noise process settings.</summary>
    public DiffusionConfig Diffusion { get; }

    /// <summary>How the job runs: device, lines, warnings, spelling, pixel limit.</summary>
    public RunContext Context { get; }

    /// <summary>The data-parallel group.</summary>
    public ICommunicator Communicator { get; }

    /// <summary>Where the model trains (<see cref="RunContext.Device"/>).</summary>
    public Device Device => Context.Device;

    /// <summary>Called after every step with (completed steps, total, last train loss or NaN).</summary>
    public Action<long, long, double>? OnStep { get; init; }

    /// <summary>
    /// Runs <paramref name="body"/> in the data-parallel group that <paramref name="distributedMode"/> names (one of
    /// <see cref="Communicators.Modes"/>), with torch's threads sized for this rank; under MPI a failing rank aborts the
    /// whole group, or the others would wait forever in a collective. What a training program does around its jobs.
    /// </summary>
    /// <returns><paramref name="body"/>'s exit code (MPI: 1 after a rank's failure was printed).</returns>
    /// <exception cref="ArgumentException">An unknown mode.</exception>
    /// <exception cref="MpiUnavailableException">MPI was chosen but Open MPI's library cannot be loaded.</exception>
    public static int InGroup(string distributedMode, Func<ICommunicator, int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        using var communicator = Communicators.Create(distributedMode);
        TorchThreads.Configure(communicator);
        return communicator.WorldSize > 1 ? Communicators.RunGuarded(communicator, () => body(communicator)) : body(communicator);
    }

    /// <summary>The image decoder's limit for this run's folders (warnings through <see cref="Context"/>).</summary>
    private protected Data.Decoding.ImageDecodeLimit DecodeLimit => Data.Decoding.ImageDecodeLimit.Of(Context);

    /// <summary>The checks every training job makes first: the run context and the loop settings.</summary>
    private protected void ValidateSettings()
    {
        Context.Validate();
        Training.Validate();
    }
}
