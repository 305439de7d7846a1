using System.CommandLine;
using GuidedDiffusion.Evaluation;

namespace GuidedDiffusion.Cli.Commands;

/// <summary><c>guided-diffusion plot</c>: training curves of a run folder's progress.csv as PNGs in the same folder.</summary>
internal static class PlotCommand
{
    /// <summary>plot's flag, bound to <see cref="TrainingCurvesOptions"/>.</summary>
    public static readonly FlagTable<TrainingCurvesOptions> Table = new();

    static PlotCommand() =>
        Table.Add(OutputFlags.LogDir, o => o.LogDir, (o, v) => o with { LogDir = v }, help: "Run folder written by classifier-train (holds progress.csv).");

    public static Command Create()
    {
        var command = new Command("plot", $"Plot training curves from <log_dir>/progress.csv: {Plots.CurvesName} (train/val loss and acc@1) and {Plots.QuartileCurvesName} (per timestep quartile).");
        var flags = Table.AddTo(command, new TrainingCurvesOptions());
        command.SetAction(parse => CliErrors.Guard(() =>
        {
            foreach (var file in new TrainingCurvesJob(flags.Bind(parse)).Run())
                CliConsole.Out.WriteLine($"wrote {file}");
            return 0;
        }));
        return command;
    }
}
