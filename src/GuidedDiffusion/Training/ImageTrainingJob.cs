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
public sealed class ImageTrainingJob : TrainingJob
{
    private readonly DiffusionModelConfig _model;

    /// <summary>Prepares a job; <see cref="Run"/> does the work.</summary>
    /// <param name="training">Loop settings (see <see cref="TrainingConfig.ImageTrainDefaults"/> for the original's).</param>
    /// <param name="model">UNet architecture; its LearnSigma must equal the diffusion's.</param>
    /// <param name="diffusion">Noise process and loss settings.</param>
    /// <param name="run">The device, where progress tables and warnings go, how settings are spelled in them, the
    /// decoder's pixel limit (null: a default <see cref="RunContext"/>: the CPU, no lines).</param>
    /// <param name="communicator">Data-parallel group (null: a single process). The batch size is per rank.</param>
    public ImageTrainingJob(TrainingConfig training, DiffusionModelConfig model, DiffusionConfig diffusion,
        RunContext? run = null, ICommunicator? communicator = null)
        : base(training, diffusion, run, communicator) => _model = model;

    /// <summary>
    /// The demo's loop settings (no data_dir: the bundled Fashion-MNIST sample) over <paramref name="training"/>: a
    /// caller that knows which settings the user chose (the CLI: the typed flags) keeps those.
    /// </summary>
    public static TrainingConfig DemoTraining(TrainingConfig training) => DemoPreset.ImageTraining(training);

    /// <summary>The demo's length over <paramref name="length"/> (see <see cref="DemoTraining"/>).</summary>
    public static ImageTrainLength DemoLength(ImageTrainLength length) => DemoPreset.ImageTrainingLength(length);

    /// <summary>The demo's tiny UNet over <paramref name="model"/> (see <see cref="DemoTraining"/>).</summary>
    public static DiffusionModelConfig DemoModel(DiffusionModelConfig model) => DemoPreset.Model(model);

    /// <summary>Trains until the configured iterations or until <paramref name="stop"/> is cancelled.</summary>
    public TrainingResult Run(CancellationToken stop = default)
    {
        // Every setting is checked before any data is listed.
        ValidateSettings();
        if (_model.LearnSigma != Diffusion.LearnSigma)
            throw new ConfigurationException("learn_sigma", $"the model has learn_sigma {_model.LearnSigma} but the diffusion {Diffusion.LearnSigma}; they must agree (one flag in the original).");
        var loss = DiffusionLoss.For(Diffusion);
        var architecture = _model.ToOptions();
        IImageSource source = Training.Data.OpenFolder(decodeLimit: DecodeLimit) ?? OpenDemo();
        if (_model.ClassCond && _model.NumClasses < source.Classes.Count)
            throw new ConfigurationException("num_classes", $"{_model.NumClasses} is fewer than the {source.Classes.Count} classes in the data ({source.Classes.Describe()}).");
        var training = Training with { Precision = Training.Precision.ResolvedFor(_model.UseFp16, Runtime.CpuFeatures.Current) };

        using var session = TrainingSession.Open(training, MetricKeys.ForDiffusion(loss.TermNames, training.Precision.Mode == TrainingPrecision.Fp16),
            logDir => ResumePoint.Find(training.Checkpoints.ResumeCheckpoint, logDir, _model, training.Checkpoints.AllowConfigMismatch),
            Communicator, Context);
        session.Logger?.ReportOpened(source);
        session.Log($"loss: {loss.LossType}" + (loss.Process.ModelLearnsVariance ? " with the learned-variance VLB term" : "")
            + (_model.ClassCond ? $"; class-conditional on {source.Classes.Count} classes" : ""));
        if (training.ScheduleSampler == TimestepSamplerKind.LossSecondMoment)
            session.Log("note: loss-second-moment importance-samples t from the history of per-step losses.");

        var run = session.CreateTrainer(() => new UNetModel(architecture), (m, dtype) => m.ConvertTrunkTo(dtype),
            (m, reduce) => new DiffusionTrainer(m, loss, training, _model.ClassCond, Communicator.Rank, Communicator.WorldSize, reduce, Device));
        using var trainData = new DataLoader(source, run.BeginData(_model.ImageSize), Device);
        return run.Run(trainData, "training...",
            () => TrainingLoop.BaseManifest(run.Trainer, Diffusion, training, source.Classes) with { DiffusionModel = _model },
            OnStep, afterStep: null, stop);
    }

    private IImageSource OpenDemo()
    {
        if (Communicator.IsMain)
            Context.Log($"No {SettingText.Ref("data_dir")} given: training on the bundled Fashion-MNIST sample ({DemoPreset.DescribeDiffusion(Training, _model, Diffusion)}).");
        return FashionMnistDemo.Load().Train;
    }
}
