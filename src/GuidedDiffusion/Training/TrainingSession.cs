using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Distributed;
using TorchSharp;
using Parameter = TorchSharp.Modules.Parameter;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// What classifier training and image training share around their model and loss, in the order they do it: the
/// precision policy, the run folder and resume point, rank 0's logger, the model built from the init seed on the
/// CPU, broadcast, converted and moved to the <see cref="Device"/>, the gradient all-reduce, the trainer with its
/// resumed state, the data options, and the loop with checkpoints and a clean stop. A job supplies the model, the
/// trainer, its data and its log lines.
/// </summary>
/// <param name="training">The loop settings with the precision resolved.</param>
/// <param name="logDirectory">The run folder.</param>
/// <param name="resume">Where the run continues from, or null.</param>
/// <param name="columns">progress.csv's columns.</param>
/// <param name="logger">Rank 0's logger, or null.</param>
/// <param name="communicator">The data-parallel group.</param>
/// <param name="device">The training device.</param>
internal sealed class TrainingSession(TrainingConfig training, string logDirectory, ResumePoint? resume, IReadOnlyList<string> columns,
    RunLogger? logger, ICommunicator communicator, Device device) : IDisposable
{
    private readonly List<IDisposable> _owned = new();

    /// <summary>The loop settings with the precision resolved (fp32, bf16 or fp16).</summary>
    public TrainingConfig Training { get; } = training;

    /// <summary>The run folder.</summary>
    public string LogDirectory { get; } = logDirectory;

    /// <summary>Where the run continues from, or null for a fresh run.</summary>
    public ResumePoint? Resume { get; } = resume;

    /// <summary>progress.csv's columns.</summary>
    public IReadOnlyList<string> Columns { get; } = columns;

    /// <summary>Rank 0's logger (null on the other ranks: only rank 0 writes logs and checkpoints).</summary>
    public RunLogger? Logger { get; } = logger;

    /// <summary>The data-parallel group.</summary>
    public ICommunicator Communicator { get; } = communicator;

    /// <summary>Where the model lives and every tensor of a step is created.</summary>
    public Device Device { get; } = device;

    /// <summary>The trainer, once <see cref="CreateTrainer{TModel, TTrainer}"/> has built it.</summary>
    public TrainerBase? Trainer { get; private set; }

    /// <summary>The run folder: log_dir, else OPENAI_LOGDIR, else runs/&lt;timestamp&gt; (the original's logger).</summary>
    private static string ResolveLogDirectory(string logDir) =>
        !string.IsNullOrWhiteSpace(logDir) ? logDir
        : Environment.GetEnvironmentVariable("OPENAI_LOGDIR") is { Length: > 0 } env ? env
        : Path.Combine("runs", DateTime.Now.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Writes a line to log.txt and the console (rank 0 only).</summary>
    public void Log(string line) => Logger?.Log(line);

    /// <summary>
    /// Resolves the precision, opens the run folder (finding the resume point), starts rank 0's logger and logs the
    /// opening lines: the folder, the folder's notes, <paramref name="reportOpened"/>'s lines, the data-parallel line.
    /// </summary>
    /// <param name="training">Loop settings (already validated).</param>
    /// <param name="useFp16">The model's use_fp16 flag (fp16 whatever the precision setting says).</param>
    /// <param name="findResume">Finds the resume point in the run folder for this model's config.</param>
    /// <param name="columns">progress.csv's columns for the resolved precision.</param>
    /// <param name="reportOpened">Logs what the job opened (data sources, warnings) before the data-parallel line.</param>
    /// <param name="communicator">The data-parallel group.</param>
    /// <param name="device">The training device.</param>
    /// <param name="console">Where rank 0's progress goes.</param>
    public static TrainingSession Open(TrainingConfig training, bool useFp16, Func<TrainingConfig, string, ResumePoint?> findResume,
        Func<TrainingPrecision, IReadOnlyList<string>> columns, Action<RunLogger>? reportOpened, ICommunicator communicator, Device device, TextWriter console)
    {
        var precision = useFp16 ? TrainingPrecision.Fp16 : PrecisionPolicy.Resolve(training.Precision, training.AllowSlowBf16, Runtime.CpuFeatures.Current);
        training = training with { Precision = precision };
        string logDir = ResolveLogDirectory(training.LogDir);
        // Every rank reads the checkpoint itself (the original reads it on rank 0 only and then hangs).
        var (resume, append, notes) = RunFolder.Open(training, logDir, communicator.IsMain, () => findResume(training, logDir));
        var keys = columns(precision);
        var logger = communicator.IsMain ? new RunLogger(logDir, keys, append, console) : null;
        var session = new TrainingSession(training, logDir, resume, keys, logger, communicator, device);
        if (logger is not null) session._owned.Add(logger);
        session.Log($"Logging to {Path.GetFullPath(logDir)}");
        foreach (var note in notes) session.Log(note);
        if (logger is not null) reportOpened?.Invoke(logger);
        if (communicator.WorldSize > 1) session.Log($"data-parallel over {communicator.WorldSize} processes; {SettingText.Ref("batch_size")} {training.BatchSize} per process");
        return session;
    }

    /// <summary>
    /// Builds the model on the CPU from the init seed (the same weights on every device and rank), takes rank 0's
    /// weights, converts the trunk to the precision's dtype, moves the model to <see cref="Device"/>, and creates the
    /// trainer over it with the gradient all-reduce of a multi-process run; a resumed run then loads its state. The
    /// session owns (disposes) the model and the trainer.
    /// </summary>
    /// <param name="build">Builds the model.</param>
    /// <param name="convertTrunk">Converts the model's trunk to a dtype (float16 / bfloat16).</param>
    /// <param name="create">Creates the trainer over (model, gradient reduction or null).</param>
    /// <returns>The model (on <see cref="Device"/>) and its trainer.</returns>
    public (TModel Model, TTrainer Trainer) CreateTrainer<TModel, TTrainer>(Func<TModel> build, Action<TModel, ScalarType> convertTrunk,
        Func<TModel, Action<IReadOnlyList<Parameter>>?, TTrainer> create)
        where TModel : nn.Module where TTrainer : TrainerBase
    {
        Log("creating model and diffusion...");
        manual_seed(StepSeeds.For(Training.Seed, 0, 0, StepSeeds.Purpose.Init));
        var model = ComputeDevice.OnCpu(build);
        _owned.Add(model);
        Communicator.BroadcastParameters(model);
        if (Training.Precision.TrunkType() is { } trunkType) convertTrunk(model, trunkType);
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
        Trainer = trainer;
        return (model, trainer);
    }

    /// <summary>Logs that the data loaders are being created and returns the training stream's options (this rank's shard, at the trainer's position).</summary>
    /// <param name="imageSize">The model's image size.</param>
    public DataOptions BeginData(int imageSize)
    {
        Log("creating data loader...");
        return TrainingLoop.DataOptionsFor(Training, Communicator, imageSize, Trainer!.CompletedSteps);
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
        Log(startLine);
        var loop = new TrainingLoop(Trainer!, Training, Communicator, Logger, Columns, LogDirectory)
        {
            OnStep = onStep,
            AfterStep = afterStep,
            Manifest = manifest,
        };
        long recomputedBefore = Models.GradientCheckpoint.Recomputations;
        var result = loop.Run(trainData, Resume, stop);
        // Proof that use_checkpoint took effect: blocks re-run by the backward passes of this thread's steps.
        if (Models.GradientCheckpoint.Recomputations - recomputedBefore is > 0 and var recomputed)
            Log($"gradient checkpointing: {recomputed} block forwards were recomputed in the backward passes of this run.");
        return result;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        // The trainer before the model, the model before the logger: the reverse of creation.
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
    }
}
