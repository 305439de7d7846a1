using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Distributed;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// What both training scripts take besides their model's architecture: the loop settings, the noise process,
/// where progress goes, the data-parallel group and the device. <see cref="ClassifierTrainingJob"/> and
/// <see cref="ImageTrainingJob"/> add the architecture and the work (through <see cref="TrainingSession"/>).
/// </summary>
public abstract class TrainingJob
{
    /// <summary>Prepares a job; <c>Run</c> does the work.</summary>
    /// <param name="training">Loop settings.</param>
    /// <param name="diffusion">Noise process (and, for a diffusion model, loss) settings.</param>
    /// <param name="console">Where progress tables go (null: nowhere).</param>
    /// <param name="communicator">Data-parallel group (null: a single process). The batch size is per rank.</param>
    /// <param name="device">Where the model trains (null: the CPU); see <see cref="ComputeDevice.Parse"/>.</param>
    private protected TrainingJob(TrainingConfig training, DiffusionConfig diffusion, TextWriter? console, ICommunicator? communicator, Device? device)
    {
        Training = training;
        Diffusion = diffusion;
        Output = console ?? TextWriter.Null;
        Communicator = communicator ?? new SingleProcessCommunicator();
        Device = device ?? CPU;
    }

    /// <summary>The loop settings as given (the session may adjust them on resume).</summary>
    public TrainingConfig Training { get; }

    /// <summary>The noise process settings.</summary>
    public DiffusionConfig Diffusion { get; }

    /// <summary>Where progress tables go (not <c>Console</c>: a property of that name would shadow System.Console in the jobs).</summary>
    public TextWriter Output { get; }

    /// <summary>The data-parallel group.</summary>
    public ICommunicator Communicator { get; }

    /// <summary>Where the model trains.</summary>
    public Device Device { get; }

    /// <summary>Called after every step with (completed steps, total, last train loss or NaN).</summary>
    public Action<long, long, double>? OnStep { get; init; }
}
