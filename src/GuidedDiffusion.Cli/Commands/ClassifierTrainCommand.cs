using System.CommandLine;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Cli.Commands;

/// <summary><c>guided-diffusion classifier-train</c>: the original's classifier_train.py flags, plus ours.</summary>
internal static class ClassifierTrainCommand
{
    public static Command Create()
    {
        var command = new Command("classifier-train", "Train a noise-aware classifier p(y | x_t, t) (the original's scripts/classifier_train.py).");
        var loop = TrainingFlags.AddTo(command, new TrainingConfig(), TrainingFlags.ClassifierTrain);
        var run = RunFlags.Table.AddTo(command, new RunFlags.Settings());
        var model = ClassifierModelFlags.AddTo(command);
        var attack = AttackFlags.AddForTraining(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var training = loop.Bind(parse);
            training = training with { Objective = training.Objective with { Adversarial = attack.Options(parse) } };
            var classifier = model.Classifier.Bind(parse);
            var diffusion = model.Diffusion.Bind(parse);
            var context = JobRun.For(parse, run);

            if (string.IsNullOrWhiteSpace(training.Data.DataDir))
            {
                // The demo: only flags the user did not type take the demo's values.
                training = loop.WithDemo(parse, training, ClassifierTrainingJob.DemoTraining(loop.Defaults));
                classifier = model.Classifier.WithDemo(parse, classifier, ClassifierTrainingJob.DemoClassifier(model.Classifier.Defaults));
            }

            return TrainingRunner.Run(run.Bind(parse).Distributed, context, (comm, jobRun, progress, stop) =>
                new ClassifierTrainingJob(training, classifier, diffusion, jobRun, comm) { OnStep = progress.Report }.Run(stop));
        }));
        return command;
    }
}
