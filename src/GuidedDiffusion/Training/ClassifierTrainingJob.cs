using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Distributed;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Models;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>What a finished (or interrupted) training run left behind.</summary>
/// <param name="LogDirectory">The run folder.</param>
/// <param name="LastCheckpoint">The newest modelNNNNNN.pt written.</param>
/// <param name="CompletedSteps">Updates contained in that checkpoint.</param>
/// <param name="Interrupted">Whether the run stopped early on request (Ctrl-C / SIGTERM).</param>
public sealed record TrainingResult(string LogDirectory, string LastCheckpoint, long CompletedSteps, bool Interrupted);

/// <summary>
/// The whole of classifier_train.py: data, model, diffusion, resume, the loop with validation, logging and
/// checkpoints. Configuration comes in as records; nothing here parses flags.
/// </summary>
public sealed class ClassifierTrainingJob : TrainingJob
{
    private readonly ClassifierConfig _classifier;

    /// <summary>Prepares a job; <see cref="Run"/> does the work.</summary>
    /// <param name="training">Loop settings.</param>
    /// <param name="classifier">Architecture; a null NumClasses means "from the data".</param>
    /// <param name="diffusion">Noise process settings.</param>
    /// <param name="console">Where progress tables go (null: nowhere).</param>
    /// <param name="communicator">Data-parallel group (null: a single process). The batch size is per rank.</param>
    /// <param name="device">Where the model trains (null: the CPU); see <see cref="ComputeDevice.Parse"/>.</param>
    public ClassifierTrainingJob(TrainingConfig training, ClassifierConfig classifier, DiffusionConfig diffusion,
        TextWriter? console = null, ICommunicator? communicator = null, Device? device = null)
        : base(training, diffusion, console, communicator, device) => _classifier = classifier;

    /// <summary>Trains until the configured iterations or until <paramref name="stop"/> is cancelled.</summary>
    public TrainingResult Run(CancellationToken stop = default)
    {
        // Every flag is checked before any data is listed; the class count may come from the data.
        Training.Validate();
        var diffusion = Diffusion.Build();
        _classifier.Validate();
        var (trainSource, valSource) = OpenData();
        int numClasses = _classifier.NumClasses ?? trainSource.Classes.Count;
        if (numClasses < trainSource.Classes.Count)
            throw new ConfigurationException(ClassifierConfig.SettingNames.OutChannels, $"{numClasses} is fewer than the {trainSource.Classes.Count} classes in the data ({trainSource.Classes.Describe()}).");
        var classifier = _classifier with { NumClasses = numClasses };
        var architecture = classifier.ToOptions();
        using var session = TrainingSession.Open(Training, classifier.UseFp16,
            (training, logDir) => ResumePoint.Find(training.ResumeCheckpoint, logDir, classifier, training.AllowConfigMismatch),
            precision =>
            {
                var columns = MetricKeys.All(numClasses, valSource is not null, precision == TrainingPrecision.Fp16);
                return Training.Adversarial is null ? columns : AdversarialMetrics.AddTo(columns, numClasses, valSource is not null);
            },
            logger =>
            {
                logger.ReportOpened(trainSource, valSource);
                foreach (var warning in classifier.AttentionWarnings()) logger.Warn(warning);
            },
            Communicator, Device, Output);
        var training = session.Training;
        var resume = session.Resume;
        var logger = session.Logger;
        void Log(string line) => session.Log(line);
        if (!string.IsNullOrEmpty(Diffusion.TimestepRespacing) && training.Noised)
            Log($"note: with {SettingText.Ref("timestep_respacing")} {Diffusion.TimestepRespacing} the classifier sees spaced t in [0, {diffusion.NumTimesteps}), as the original trainer does; at sampling time it will be given original timesteps.");
        if (training.Adversarial is { } attack)
            Log($"adversarial training: {attack.Describe()} on every microbatch (train_* are measured on the attacked batch).");
        if (resume?.Manifest is { } resumed && TrainingConfig.RecordedIn(resumed)?.Adversarial is var recorded && recorded != training.Adversarial)
            Log($"note: {resume.ModelPath} was trained {GuidedDiffusion.Adversarial.L2PgdOptions.Training(recorded)}; "
                + $"this run continues {GuidedDiffusion.Adversarial.L2PgdOptions.Training(training.Adversarial)}.");
        if (training.ScheduleSampler == TimestepSamplerKind.LossSecondMoment)
            Log("note: loss-second-moment is fed the per-sample losses (the original never updates it and samples uniformly).");

        var (model, trainer) = session.CreateTrainer(() => new EncoderUNet(architecture), (m, dtype) => m.ConvertTrunkTo(dtype),
            (m, reduce) => new ClassifierTrainer(m, diffusion, training, numClasses, Communicator.Rank, Communicator.WorldSize, reduce, Device));

        var dataOptions = session.BeginData(classifier.ImageSize);
        using var trainData = new DataLoader(trainSource, dataOptions, Device);
        using var valData = valSource is null ? null : new DataLoader(valSource, dataOptions.ForValidation() with { StartBatch = 0, Seed = training.Seed + 1, Shuffle = true }, Device);

        var result = session.Run(trainData, "training classifier model...",
            () => TrainingLoop.BaseManifest(trainer, Diffusion, training, trainSource.Classes) with { Classifier = classifier },
            OnStep,
            valData is null ? null : step =>
            {
                if (step % training.EvalInterval != 0) return;
                using (var batch = valData.Next()) trainer.Evaluate(batch.Images, batch.Labels);
                logger?.ReportSkipped(valData.TakeNewBadImages());
            },
            stop);
        if (training.EvalTable && valSource is not null && Communicator.IsMain && !result.Interrupted)
        {
            // A clean classifier (--noised False) only ever sees t = 0: its table is that one row.
            var options = EvaluationOptions.QuickTable with { NumWorkers = training.NumWorkers, Seed = training.Seed };
            if (!training.Noised) options = options with { Timesteps = new[] { 0 } };
            var report = NoiseLevelEvaluator.Run(model, diffusion, valSource, options);
            Log((training.Noised ? "accuracy per noise level" : "accuracy on clean images") + " (whole validation set):\n" + report.FormatTable());
        }
        return result;
    }

    private (IImageSource Train, IImageSource? Validation) OpenData()
    {
        if (string.IsNullOrWhiteSpace(Training.DataDir))
        {
            var demo = FashionMnistDemo.Load();
            return (demo.Train, demo.Validation);
        }
        var train = TrainingLoop.OpenFolder(Training.DataDir, Training.LabelFrom, skipBadImages: Training.SkipBadImages)!;
        var val = TrainingLoop.OpenFolder(Training.ValDataDir, Training.LabelFrom, train.Classes, Training.SkipBadImages);
        return (train, val);
    }
}
