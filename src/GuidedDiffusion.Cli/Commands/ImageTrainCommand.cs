using System.CommandLine;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Cli.Commands;

/// <summary><c>guided-diffusion image-train</c>: the original's image_train.py flags (diffusion-model training), plus ours.</summary>
internal static class ImageTrainCommand
{
    public static Command Create()
    {
        var command = new Command("image-train", "Train a diffusion model (the ADM UNet) on images (the original's scripts/image_train.py).");
        var loop = TrainingFlags.AddTo(command, TrainingConfig.ImageTrainDefaults, TrainingFlags.ImageTrain);
        var length = ImageTrainLengthFlags.Table.AddTo(command, new ImageTrainLength());
        var run = RunFlags.Table.AddTo(command, new RunFlags.Settings());
        var model = DiffusionModelFlags.AddTo(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var steps = length.Bind(parse);
            var training = loop.Bind(parse) with { Length = steps.ToLength() };
            var unet = model.BindModel(parse);
            var diffusion = model.Diffusion.Bind(parse);
            var context = JobRun.For(parse, run);

            if (string.IsNullOrWhiteSpace(training.Data.DataDir))
            {
                // The demo: only flags the user did not type take the demo's values.
                var demoSteps = length.WithDemo(parse, steps, ImageTrainingJob.DemoLength(length.Defaults));
                training = loop.WithDemo(parse, training, ImageTrainingJob.DemoTraining(loop.Defaults)) with { Length = demoSteps.ToLength() };
                unet = model.Model.WithDemo(parse, unet, ImageTrainingJob.DemoModel(model.Model.Defaults));
            }

            bool bounded = training.Length.Iterations is not null;
            return TrainingRunner.Run(run.Bind(parse).Distributed, context, (comm, jobRun, progress, stop) =>
            {
                var job = new ImageTrainingJob(training, unet, diffusion, jobRun, comm)
                {
                    OnStep = bounded ? progress.Report : null,
                };
                if (!bounded && comm.IsMain) CliConsole.Out.WriteLine("No --lr_anneal_steps or --iterations: training until stopped (Ctrl-C saves a checkpoint).");
                return job.Run(stop);
            });
        }));
        return command;
    }
}
