using System.CommandLine;
using GuidedDiffusion.Evaluation;

namespace GuidedDiffusion.Cli.Commands;

/// <summary><c>guided-diffusion plot</c>: training curves of a run folder's progress.csv as PNGs in the same folder.</summary>
internal static class PlotCommand
{
    /// <summary>The run folder to plot.</summary>
    public sealed record Request
    {
        public string LogDir { get; init; } = "";
    }

    /// <summary>plot's flag, bound to <see cref="Request"/>.</summary>
    public static readonly FlagTable<Request> Table = new();

    static PlotCommand() =>
        Table.Add(OutputFlags.LogDir, r => r.LogDir, (r, v) => r with { LogDir = v }, help: "Run folder written by classifier-train (holds progress.csv).");

    public static Command Create()
    {
        var command = new Command("plot", $"Plot training curves from <log_dir>/progress.csv: {Plots.CurvesName} (train/val loss and acc@1) and {Plots.QuartileCurvesName} (per timestep quartile).");
        var flags = Table.AddTo(command, new Request());
        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var directory = flags.Bind(parse).LogDir;
            if (directory.Length == 0) throw new ConfigurationException("log_dir", "is required: the run folder holding progress.csv.");
            foreach (var file in Plots.TrainingCurves(directory))
                Console.WriteLine($"wrote {file}");
            return 0;
        }));
        return command;
    }
}
