using System.CommandLine;
using System.Globalization;
using GuidedDiffusion.Evaluation;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// <c>guided-diffusion image-nll</c>: the original's <c>scripts/image_nll.py</c>. The bits per dimension of a
/// diffusion model on an image folder (the variational bound: prior + every per-timestep term), with the original's
/// log lines and <c>*_terms.npz</c> files, plus nll.json (total, prior, VB per t-quartile).
/// </summary>
internal static class ImageNllCommand
{
    /// <summary>image_nll.py's flags, bound to <see cref="ImageNllOptions"/>.</summary>
    public static readonly FlagTable<ImageNllOptions> Table = new();

    static ImageNllCommand()
    {
        Table.Add(DataFlags.DataDir, o => o.DataDir, (o, v) => o with { DataDir = v });
        Table.Add(DataFlags.BatchSize, o => o.BatchSize, (o, v) => o with { BatchSize = v }, help: "Images per calc_bpd_loop batch.");
        Table.Add(DenoisingFlags.NumSamples, o => o.NumSamples, (o, v) => o with { NumSamples = v },
            help: "Evaluate until this many images are done (whole batches; the data restarts if it runs out).");
        Table.Add(DenoisingFlags.ClipDenoised, o => o.ClipDenoised, (o, v) => o with { ClipDenoised = v });
        Table.Add(SeedFlags.Seed, o => o.Seed, (o, v) => o with { Seed = v });
        Table.Add(OutputFlags.LogDir, o => o.LogDir, (o, v) => o with { LogDir = v },
            help: "Where vb_terms.npz, mse_terms.npz, xstart_mse_terms.npz and nll.json go (default: the checkpoint's folder).");
        Table.Add(DataFlags.NumWorkers, o => o.NumWorkers, (o, v) => o with { NumWorkers = v });
    }

    public static Command Create()
    {
        var command = new Command("image-nll", "Bits per dimension of a diffusion model on images: the variational bound, per timestep and in total (image_nll.py).");
        var model = DiffusionModelSourceFlags.AddTo(command);
        var flags = Table.AddTo(command, new ImageNllOptions());
        var run = RunFlags.AddDeviceTo(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var result = new ImageNllJob(flags.Bind(parse) with { Model = model.Bind(parse) }, JobRun.For(parse, run)).Run();
            foreach (var (key, value) in result.Summary())
                CliConsole.Out.WriteLine($"| {key,-14} | {value.ToString("G6", CultureInfo.InvariantCulture),12} |");
            return 0;
        }));
        return command;
    }
}
