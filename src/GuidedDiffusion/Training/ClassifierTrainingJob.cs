using GuidedDiffusion.Adversarial;
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
    /// <param name="run">The device, where progress tables and warnings go, how settings are spelled in them, the
    /// decoder's pixel limit (null: a default <see cref="RunContext"/>: the CPU, no lines).</param>
    /// <param name="communicator">Data-parallel group (null: a single process). The batch size is per rank.</param>
    public ClassifierTrainingJob(TrainingConfig training, ClassifierConfig classifier, DiffusionConfig diffusion,
        RunContext? run = null, ICommunicator? communicator = null)
        : base(training, diffusion, run, communicator) => _classifier = classifier;

    /// <summary>
    /// The demo's loop settings (no data_dir: the bundled Fashion-MNIST sample) over <paramref name="training"/>: a
    /// caller that knows which settings the user chose (the CLI: the typed flags) keeps those.
    /// </summary>
    public static TrainingConfig DemoTraining(TrainingConfig training) => DemoPreset.ClassifierTraining(training);

    /// <summary>The demo's small classifier over <paramref name="classifier"/> (see <see cref="DemoTraining"/>).</summary>
    public static ClassifierConfig DemoClassifier(ClassifierConfig classifier) => DemoPreset.Classifier(classifier);

    /// <summary>Trains until the configured iterations or until <paramref name="stop"/> is cancelled.</summary>
    public TrainingResult Run(CancellationToken stop = default)
    {
        // Every setting is checked before any data is listed; the class count may come from the data.
        ValidateSettings();
        var diffusion = Diffusion.Build();
        _classifier.Validate();
        var (trainSource, valSource) = OpenData(_classifier);
        int numClasses = _classifier.NumClasses ?? trainSource.Classes.Count;
        if (numClasses < trainSource.Classes.Count)
            throw new ConfigurationException(ClassifierConfig.SettingNames.OutChannels, $"{numClasses} is fewer than the {trainSource.Classes.Count} classes in the data ({trainSource.Classes.Describe()}).");
        var classifier = _classifier with { NumClasses = numClasses };
        var architecture = classifier.ToOptions();
        var training = Training with { Precision = Training.Precision.ResolvedFor(classifier.UseFp16, Runtime.CpuFeatures.Current) };

        using var session = TrainingSession.Open(training, Columns(training, numClasses, valSource is not null),
            logDir => ResumePoint.Find(training.Checkpoints.ResumeCheckpoint, logDir, classifier, training.Checkpoints.AllowConfigMismatch),
            Communicator, Context);
        session.Logger?.ReportOpened(trainSource, valSource);
        foreach (var warning in classifier.AttentionWarnings()) session.Logger?.Warn(warning);
        LogNotes(session, diffusion);

        var run = session.CreateTrainer(() => new EncoderUNet(architecture), (m, dtype) => m.ConvertTrunkTo(dtype),
            (m, reduce) => new ClassifierTrainer(m, diffusion, training, numClasses, Communicator.Rank, Communicator.WorldSize, reduce, Device));
        var data = run.BeginData(classifier.ImageSize);
        using var trainData = new DataLoader(trainSource, data, Device);
        using var valData = valSource is null ? null
            : new DataLoader(valSource, data.ForValidation(training.Validation.FlipValidation) with { StartBatch = 0, Seed = training.Seed + 1, Shuffle = true }, Device);
        var result = run.Run(trainData, "training classifier model...",
            () => TrainingLoop.BaseManifest(run.Trainer, Diffusion, training, trainSource.Classes) with { Classifier = classifier },
            OnStep, valData is null ? null : step => Validate(session, run.Trainer, valData, step), stop);

        if (training.Validation.EvalTable && valSource is not null && Communicator.IsMain && !result.Interrupted)
            LogEvaluationTable(session, run.Model, diffusion, valSource);
        return result;
    }

    /// <summary>progress.csv's columns: the classifier's metrics, with fp16's loss scale and an attack's robust metrics.</summary>
    private static IReadOnlyList<string> Columns(TrainingConfig training, int numClasses, bool validates)
    {
        var columns = MetricKeys.All(numClasses, validates, training.Precision.Mode == TrainingPrecision.Fp16);
        return training.Objective.Adversarial is null ? columns : AdversarialMetrics.AddTo(columns, numClasses, validates);
    }

    /// <summary>What this run does differently from the original, and what it continues.</summary>
    private void LogNotes(TrainingSession session, GaussianDiffusion diffusion)
    {
        var training = session.Training;
        if (!string.IsNullOrEmpty(Diffusion.TimestepRespacing) && training.Objective.Noised)
            session.Log($"note: with {SettingText.Ref("timestep_respacing")} {Diffusion.TimestepRespacing} the classifier sees spaced t in [0, {diffusion.NumTimesteps}), as the original trainer does; at sampling time it will be given original timesteps.");
        if (training.Objective.Adversarial is { } attack)
            session.Log($"adversarial training: {attack.Describe()} on every microbatch (train_* are measured on the attacked batch).");
        if (session.Resume?.Manifest is { } resumed && TrainingConfig.RecordedIn(resumed)?.Objective.Adversarial is var recorded && recorded != training.Objective.Adversarial)
            session.Log($"note: {session.Resume.ModelPath} was trained {L2PgdOptions.Training(recorded)}; "
                + $"this run continues {L2PgdOptions.Training(training.Objective.Adversarial)}.");
        if (training.ScheduleSampler == TimestepSamplerKind.LossSecondMoment)
            session.Log("note: loss-second-moment is fed the per-sample losses (the original never updates it and samples uniformly).");
    }

    /// <summary>One validation batch every <c>eval_interval</c> steps.</summary>
    private static void Validate(TrainingSession session, ClassifierTrainer trainer, DataLoader valData, long step)
    {
        if (step % session.Training.Validation.EvalInterval != 0) return;
        using (var batch = valData.Next()) trainer.Evaluate(batch.Images, batch.Labels);
        session.Logger?.ReportSkipped(valData.TakeNewBadImages());
    }

    /// <summary>The end-of-run accuracy per noise level on the whole validation set.</summary>
    private static void LogEvaluationTable(TrainingSession session, EncoderUNet model, GaussianDiffusion diffusion, IImageSource valSource)
    {
        var training = session.Training;
        // A clean classifier (noised False) only ever sees t = 0: its table is that one row.
        var options = EvaluationOptions.QuickTable with { NumWorkers = training.Data.NumWorkers, Seed = training.Seed };
        if (!training.Objective.Noised) options = options with { Timesteps = [0] };
        var report = NoiseLevelEvaluator.Run(model, diffusion, valSource, options);
        session.Log((training.Objective.Noised ? "accuracy per noise level" : "accuracy on clean images") + " (whole validation set):\n" + report.FormatTable());
    }

    private (IImageSource Train, IImageSource? Validation) OpenData(ClassifierConfig classifier)
    {
        if (Training.Data.OpenFolder(decodeLimit: DecodeLimit) is not { } train)
        {
            if (Communicator.IsMain)
                Context.Log($"No {SettingText.Ref("data_dir")} given: training on the bundled Fashion-MNIST sample ({DemoPreset.Describe(Training, classifier)}).");
            var demo = FashionMnistDemo.Load();
            return (demo.Train, demo.Validation);
        }
        return (train, Training.Data.OpenFolder(Training.Validation.ValDataDir, train.Classes, DecodeLimit));
    }
}
