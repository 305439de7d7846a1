using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Distributed;
using TorchSharp;
using Parameter = TorchSharp.Modules.Parameter;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// What classifier training and image training share around their model and loss, in the order the types impose:
/// <see cref="Open"/> (the run folder and resume point, rank 0's logger and opening lines), then
/// <see cref="CreateTrainer{TModel, TTrainer}"/> (the model built from the init seed on the CPU, broadcast, converted
/// and moved to the <see cref="Device"/>, the gradient all-reduce, the trainer with its resumed state), which gives the
/// <see cref="TrainingRun{TModel, TTrainer}"/> that opens the data at the trainer's position and runs the loop. A job
/// supplies the model, the trainer, its data and its log lines. The session owns (disposes) the logger, model,
/// all-reduce and trainer.
/// </summary>
internal sealed class TrainingSession : IDisposable
{
    private readonly List<IDisposable> _owned = new();

    private TrainingSession(TrainingConfig training, string logDirectory, ResumePoint? resume, IReadOnlyList<string> columns,
        RunLogger? logger, ICommunicator communicator, Device device)
    {
        (Training, LogDirectory, Resume, Columns, Logger, Communicator, Device) = (training, logDirectory, resume, columns, logger, communicator, device);
        if (logger is not null) _owned.Add(logger);
    }

    /// <summary>The training settings, with the precision resolved (fp32, bf16 or fp16).</summary>
    public TrainingConfig Training { get; }

    /// <summary>The run folder.</summary>
    public string LogDirectory { get; }

    /// <summary>Where the run continues from, or null for a fresh run.</summary>
    public ResumePoint? Resume { get; }

    /// <summary>progress.csv's columns.</summary>
    public IReadOnlyList<string> Columns { get; }

    /// <summary>Rank 0's logger (null on the other ranks: only rank 0 writes logs and checkpoints).</summary>
    public RunLogger? Logger { get; }

    /// <summary>The data-parallel group.</summary>
    public ICommunicator Communicator { get; }

    /// <summary>Where the model lives and every tensor of a step is created.</summary>
    public Device Device { get; }

    /// <summary>Writes a line to log.txt and the console (rank 0 only).</summary>
    public void Log(string line) => Logger?.Log(line);

    /// <summary>
    /// Opens the run folder (finding the resume point), starts rank 0's logger and logs the folder and the folder's notes.
    /// </summary>
    /// <param name="training">The training settings, validated and with the precision resolved (<see cref="PrecisionSettings.ResolvedFor"/>).</param>
    /// <param name="columns">progress.csv's columns.</param>
    /// <param name="findResume">Finds the resume point in the run folder (given) for this model's config.</param>
    /// <param name="communicator">The data-parallel group.</param>
    /// <param name="run">The device, where rank 0's lines and warnings go and how settings are spelled in them.</param>
    public static TrainingSession Open(TrainingConfig training, IReadOnlyList<string> columns, Func<string, ResumePoint?> findResume,
        ICommunicator communicator, RunContext run)
    {
        string logDir = training.Checkpoints.ResolveLogDirectory();
        // Every rank reads the checkpoint itself (the original reads it on rank 0 only and then hangs).
        var (resume, append, notes) = RunFolder.Open(training.Checkpoints, logDir, communicator.IsMain, () => findResume(logDir));
        var logger = communicator.IsMain ? new RunLogger(logDir, columns, append, run) : null;
        var session = new TrainingSession(training, logDir, resume, columns, logger, communicator, run.Device);
        session.Log($"Logging to {Path.GetFullPath(logDir)}");
        foreach (var note in notes) session.Log(note);
        return session;
    }

    /// <summary>
    /// Builds the model on the CPU from the init seed (the same weights on every device and rank), takes rank 0's
    /// weights, converts the trunk to the precision's dtype, moves the model to <see cref="Device"/>, and creates the
    /// trainer over it with the gradient all-reduce of a multi-process run; a resumed run then loads its state.
    /// </summary>
    /// <param name="build">Builds the model.</param>
    /// <param name="convertTrunk">Converts the model's trunk to a dtype (float16 / bfloat16).</param>
    /// <param name="create">Creates the trainer over (model, gradient reduction or null).</param>
    /// <returns>The run: the model (on <see cref="Device"/>) and its trainer, ready for data.</returns>
    public TrainingRun<TModel, TTrainer> CreateTrainer<TModel, TTrainer>(Func<TModel> build, Action<TModel, ScalarType> convertTrunk,
        Func<TModel, Action<IReadOnlyList<Parameter>>?, TTrainer> create)
        where TModel : nn.Module where TTrainer : TrainerBase
    {
        if (Communicator.WorldSize > 1) Log($"data-parallel over {Communicator.WorldSize} processes; {SettingText.Ref("batch_size")} {Training.Data.BatchSize} per process");
        Log("creating model and diffusion...");
        manual_seed(StepSeeds.For(Training.Seed, 0, 0, StepSeeds.Purpose.Init));
        var model = ComputeDevice.OnCpu(build);
        _owned.Add(model);
        Communicator.BroadcastParameters(model);
        if (Training.Precision.Mode.TrunkType() is { } trunkType) convertTrunk(model, trunkType);
        // Milliseconds: the native kernels of the model's unusual layers, in the dtypes they will run in, against
        // float64 on this CPU (issue 24).
        if (Device.type == DeviceType.CPU && Models.KernelSelfCheck.EnsureCorrect(model, Runtime.CpuFeatures.Current) is { } checkedLine)
            Log(checkedLine);
        model.to(Device);
        var reducer = Communicator.WorldSize > 1 ? new GradientAllReducer(Communicator, model.parameters()) : null;
        if (reducer is not null) _owned.Add(reducer);
        var trainer = create(model, reducer is null ? null : _ => reducer.AllReduceMean());
        _owned.Add(trainer);
        trainer.Message += Log;
        if (Resume is not null) TrainerCheckpoints.Restore(trainer, Resume, Log);
        return new TrainingRun<TModel, TTrainer>(this, model, trainer);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        // The trainer before the model, the model before the logger: the reverse of creation.
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
    }
}

/// <summary>A session's model and trainer, ready for data: <see cref="BeginData"/>, then <see cref="Run"/>.</summary>
/// <param name="session">The session that owns the model and trainer.</param>
/// <param name="model">The model, on the session's device.</param>
/// <param name="trainer">Its trainer, with a resumed run's state.</param>
internal sealed class TrainingRun<TModel, TTrainer>(TrainingSession session, TModel model, TTrainer trainer)
    where TModel : nn.Module where TTrainer : TrainerBase
{
    /// <summary>The model, on the session's device.</summary>
    public TModel Model { get; } = model;

    /// <summary>The trainer.</summary>
    public TTrainer Trainer { get; } = trainer;

    /// <summary>
    /// Logs that the data loaders are being created and returns the training data section as this run reads it: at
    /// <paramref name="imageSize"/>, seeded by the run's seed, this rank's shard, from the trainer's position.
    /// </summary>
    /// <param name="imageSize">The model's image size.</param>
    public DataOptions BeginData(int imageSize)
    {
        session.Log("creating data loader...");
        return session.Training.Data with
        {
            ImageSize = imageSize,
            Seed = session.Training.Seed,
            Rank = session.Communicator.Rank,
            WorldSize = session.Communicator.WorldSize,
            StartBatch = Trainer.CompletedSteps,
        };
    }

    /// <summary>Logs <paramref name="startLine"/> and runs the loop until the iterations are done or <paramref name="stop"/> is cancelled.</summary>
    /// <param name="trainData">The training stream.</param>
    /// <param name="startLine">The job's "training..." line.</param>
    /// <param name="manifest">The sidecar for the checkpoint about to be written.</param>
    /// <param name="onStep">Called after every step with (completed steps, total, latest progress metric or NaN).</param>
    /// <param name="afterStep">Extra work after each step's update (the classifier's validation batch).</param>
    /// <param name="stop">Requests a clean stop.</param>
    public TrainingResult Run(DataLoader trainData, string startLine, Func<CheckpointManifest> manifest, Action<long, long, double>? onStep,
        Action<long>? afterStep, CancellationToken stop)
    {
        session.Log(startLine);
        var loop = new TrainingLoop(Trainer, session.Training, session.Communicator, session.Logger, session.Columns, session.LogDirectory)
        {
            OnStep = onStep,
            AfterStep = afterStep,
            Manifest = manifest,
        };
        long recomputedBefore = Models.GradientCheckpoint.Recomputations;
        var result = loop.Run(trainData, session.Resume, stop);
        // Proof that use_checkpoint took effect: blocks re-run by the backward passes of this thread's steps.
        if (Models.GradientCheckpoint.Recomputations - recomputedBefore is > 0 and var recomputed)
            session.Log($"gradient checkpointing: {recomputed} block forwards were recomputed in the backward passes of this run.");
        return result;
    }
}
