using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Distributed;
using GuidedDiffusion.Models;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// The whole of the original's image_train.py: data, the diffusion UNet, the loss, resume, and the shared loop
/// with logging, EMA and checkpoints (<c>modelNNNNNN.pt</c>, <c>optNNNNNN.pt</c>, <c>ema_RATE_NNNNNN.pt</c> plus our
/// sidecar). Configuration comes in as records; nothing here parses flags.
/// </summary>
public sealed class ImageTrainingJob
{
    private readonly TrainingConfig _training;
    private readonly DiffusionModelConfig _model;
    private readonly DiffusionConfig _diffusion;
    private readonly TextWriter _console;
    private readonly ICommunicator _comm;

    /// <summary>Prepares a job; <see cref="Run"/> does the work.</summary>
    /// <param name="training">Loop flags (see <see cref="TrainingConfig.ImageTrainDefaults"/> for the original's).</param>
    /// <param name="model">UNet architecture; its LearnSigma must equal the diffusion's.</param>
    /// <param name="diffusion">Noise process and loss flags.</param>
    /// <param name="console">Where progress tables go (null: nowhere).</param>
    /// <param name="communicator">Data-parallel group (null: a single process). <c>--batch_size</c> is per rank.</param>
    public ImageTrainingJob(TrainingConfig training, DiffusionModelConfig model, DiffusionConfig diffusion,
        TextWriter? console = null, ICommunicator? communicator = null)
    {
        _training = training;
        _model = model;
        _diffusion = diffusion;
        _console = console ?? TextWriter.Null;
        _comm = communicator ?? new SingleProcessCommunicator();
    }

    /// <summary>Called after every step with (completed steps, total, last loss or NaN).</summary>
    public Action<long, long, double>? OnStep { get; init; }

    /// <summary>Trains until the configured iterations or until <paramref name="stop"/> is cancelled.</summary>
    public TrainingResult Run(CancellationToken stop = default)
    {
        // Every flag is checked before any data is listed.
        _training.Validate();
        if (_model.LearnSigma != _diffusion.LearnSigma)
            throw new ConfigurationException("learn_sigma", $"the model has learn_sigma {_model.LearnSigma} but the diffusion {_diffusion.LearnSigma}; they must agree (one flag in the original).");
        var loss = DiffusionLoss.For(_diffusion);
        _model.ToOptions();
        IImageSource source = TrainingLoop.OpenFolder(_training.DataDir, _training.LabelFrom, skipBadImages: _training.SkipBadImages) ?? FashionMnistDemo.Load().Train;
        if (_model.ClassCond && _model.NumClasses < source.Classes.Count)
            throw new ConfigurationException("num_classes", $"{_model.NumClasses} is fewer than the {source.Classes.Count} classes in the data ({source.Classes.Describe()}).");
        var precision = _model.UseFp16 ? TrainingPrecision.Fp16 : PrecisionPolicy.Resolve(_training.Precision, _training.AllowSlowBf16, Runtime.CpuFeatures.Current);
        var training = _training with { Precision = precision };

        string logDir = ClassifierTrainingJob.ResolveLogDirectory(training.LogDir);
        var (resume, append, notes) = RunFolder.Open(training, logDir, _comm.IsMain,
            () => ResumePoint.Find(training.ResumeCheckpoint, logDir, _model, training.AllowConfigMismatch));
        var columns = MetricKeys.ForDiffusion(loss.TermNames, precision == TrainingPrecision.Fp16);
        using var logger = _comm.IsMain ? new RunLogger(logDir, columns, append, _console) : null;
        void Log(string line) => logger?.Log(line);
        Log($"Logging to {Path.GetFullPath(logDir)}");
        foreach (var note in notes) Log(note);
        logger?.ReportOpened(source);
        if (_comm.WorldSize > 1) Log($"data-parallel over {_comm.WorldSize} processes; --batch_size {training.BatchSize} per process");
        Log($"loss: {loss.LossType}" + (loss.Process.ModelLearnsVariance ? " with the learned-variance VLB term" : "")
            + (_model.ClassCond ? $"; class-conditional on {source.Classes.Count} classes" : ""));
        if (training.ScheduleSampler == TimestepSamplerKind.LossSecondMoment)
            Log("note: loss-second-moment importance-samples t from the history of per-step losses.");

        Log("creating model and diffusion...");
        manual_seed(StepSeeds.For(training.Seed, 0, 0, StepSeeds.Purpose.Init));
        using var model = new UNetModel(_model);
        _comm.BroadcastParameters(model);
        if (precision.TrunkType() is { } trunkType) model.ConvertTrunkTo(trunkType);
        using var reducer = _comm.WorldSize > 1 ? new GradientAllReducer(_comm, model.parameters()) : null;
        using var trainer = new DiffusionTrainer(model, loss, training, _model.ClassCond, _comm.Rank, _comm.WorldSize,
            reducer is null ? null : _ => reducer.AllReduceMean());
        trainer.Message += Log;
        if (resume is not null) TrainerCheckpoints.Restore(trainer, resume, Log);

        Log("creating data loader...");
        using var trainData = new DataLoader(source, TrainingLoop.DataOptionsFor(training, _comm, _model.ImageSize, trainer.CompletedSteps));

        Log("training...");
        var loop = new TrainingLoop(trainer, training, _comm, logger, columns, logDir)
        {
            OnStep = OnStep,
            Manifest = () => TrainingLoop.BaseManifest(trainer, _diffusion, training, source.Classes) with { DiffusionModel = _model },
        };
        return loop.Run(trainData, resume, stop);
    }
}
