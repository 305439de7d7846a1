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
        Table.Add("data_dir", "Image folder (empty: the Fashion-MNIST demo's 1,000-image validation split).", o => o.DataDir, (o, v) => o with { DataDir = v });
        Table.Add("batch_size", "Images per calc_bpd_loop batch.", o => o.BatchSize, (o, v) => o with { BatchSize = v });
        Table.Add("num_samples", "Evaluate until this many images are done (whole batches; the data restarts if it runs out).", o => o.NumSamples, (o, v) => o with { NumSamples = v });
        Table.Add("clip_denoised", "Clip the x0 predictions to [-1, 1].", o => o.ClipDenoised, (o, v) => o with { ClipDenoised = v });
        Table.Add("seed", "Noise seed; a seed gives the same numbers on every run.", o => o.Seed, (o, v) => o with { Seed = v });
        Table.Add("log_dir", "Where vb_terms.npz, mse_terms.npz, xstart_mse_terms.npz and nll.json go (default: the checkpoint's folder).", o => o.LogDir, (o, v) => o with { LogDir = v });
        Table.Add("num_workers", "Image decoding threads (0: on the main thread).", o => o.NumWorkers, (o, v) => o with { NumWorkers = v });
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
                Console.WriteLine($"| {key,-14} | {value.ToString("G6", CultureInfo.InvariantCulture),12} |");
            return 0;
        }));
        return command;
    }
}
