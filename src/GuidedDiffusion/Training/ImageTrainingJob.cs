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
    private readonly Device _device;

    /// <summary>Prepares a job; <see cref="Run"/> does the work.</summary>
    /// <param name="training">Loop flags (see <see cref="TrainingConfig.ImageTrainDefaults"/> for the original's).</param>
    /// <param name="model">UNet architecture; its LearnSigma must equal the diffusion's.</param>
    /// <param name="diffusion">Noise process and loss flags.</param>
    /// <param name="console">Where progress tables go (null: nowhere).</param>
    /// <param name="communicator">Data-parallel group (null: a single process). <c>--batch_size</c> is per rank.</param>
    /// <param name="device">Where the model trains (null: the CPU); see <see cref="ComputeDevice.Parse"/>.</param>
    public ImageTrainingJob(TrainingConfig training, DiffusionModelConfig model, DiffusionConfig diffusion,
        TextWriter? console = null, ICommunicator? communicator = null, Device? device = null)
    {
        _training = training;
        _model = model;
        _diffusion = diffusion;
        _console = console ?? TextWriter.Null;
        _comm = communicator ?? new SingleProcessCommunicator();
        _device = device ?? CPU;
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
        using var session = TrainingSession.Open(_training, _model.UseFp16,
            (training, logDir) => ResumePoint.Find(training.ResumeCheckpoint, logDir, _model, training.AllowConfigMismatch),
            precision => MetricKeys.ForDiffusion(loss.TermNames, precision == TrainingPrecision.Fp16),
            logger => logger.ReportOpened(source),
            _comm, _device, _console);
        var training = session.Training;
        session.Log($"loss: {loss.LossType}" + (loss.Process.ModelLearnsVariance ? " with the learned-variance VLB term" : "")
            + (_model.ClassCond ? $"; class-conditional on {source.Classes.Count} classes" : ""));
        if (training.ScheduleSampler == TimestepSamplerKind.LossSecondMoment)
            session.Log("note: loss-second-moment importance-samples t from the history of per-step losses.");

        var (_, trainer) = session.CreateTrainer(() => new UNetModel(_model), (m, dtype) => m.ConvertTrunkTo(dtype),
            (m, reduce) => new DiffusionTrainer(m, loss, training, _model.ClassCond, _comm.Rank, _comm.WorldSize, reduce, _device));

        using var trainData = new DataLoader(source, session.BeginData(_model.ImageSize), _device);
        return session.Run(trainData, "training...",
            () => TrainingLoop.BaseManifest(trainer, _diffusion, training, source.Classes) with { DiffusionModel = _model },
            OnStep, afterStep: null, stop);
    }
}
