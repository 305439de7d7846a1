using System.CommandLine;
using GuidedDiffusion.Evaluation;

namespace GuidedDiffusion.Cli.Commands;

/// <summary><c>guided-diffusion plot</c>: training curves of a run folder's progress.csv as PNGs in the same folder.</summary>
internal static class PlotCommand
{
    public static Command Create()
    {
        var logDir = Flags.Create("log_dir", "", "Run folder written by classifier-train (holds progress.csv).");
        var command = new Command("plot", $"Plot training curves from <log_dir>/progress.csv: {Plots.CurvesName} (train/val loss and acc@1) and {Plots.QuartileCurvesName} (per timestep quartile).");
        command.Options.Add(logDir);
        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var directory = parse.GetValue(logDir) ?? "";
            if (directory.Length == 0) throw new ConfigurationException("log_dir", "is required: the run folder holding progress.csv.");
            foreach (var file in Plots.TrainingCurves(directory))
                Console.WriteLine($"wrote {file}");
            return 0;
        }));
        return command;
    }
}
