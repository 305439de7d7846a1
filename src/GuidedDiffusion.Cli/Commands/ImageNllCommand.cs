using GuidedDiffusion.Checkpoints;
using System.CommandLine;
using System.Globalization;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// <c>guided-diffusion image-nll</c>: the original's <c>scripts/image_nll.py</c>. The bits per dimension of a
/// diffusion model on an image folder (the variational bound: prior + every per-timestep term), with the original's
/// log lines and <c>*_terms.npz</c> files, plus nll.json (total, prior, VB per t-quartile).
/// </summary>
internal static class ImageNllCommand
{
    /// <summary>What image-nll reads and where it writes, with the evaluation's settings.</summary>
    public sealed record Request
    {
        public string ModelPath { get; init; } = "";
        public string DataDir { get; init; } = "";
        public string LogDir { get; init; } = "";
        public ImageNllOptions Options { get; init; } = new();
    }

    /// <summary>image_nll.py's flags, bound to <see cref="Request"/>.</summary>
    public static readonly FlagTable<Request> Table = new();

    static ImageNllCommand()
    {
        Table.Add("model_path", "Diffusion model checkpoint (.pt or .safetensors); its JSON sidecar, if any, supplies the architecture and noise process.", r => r.ModelPath, (r, v) => r with { ModelPath = v });
        Table.Add("data_dir", "Image folder (empty: the Fashion-MNIST demo's 1,000-image validation split).", r => r.DataDir, (r, v) => r with { DataDir = v });
        Table.Add("batch_size", "Images per calc_bpd_loop batch.", r => r.Options.BatchSize, (r, v) => r with { Options = r.Options with { BatchSize = v } });
        Table.Add("num_samples", "Evaluate until this many images are done (whole batches; the data restarts if it runs out).", r => r.Options.NumSamples, (r, v) => r with { Options = r.Options with { NumSamples = v } });
        Table.Add("clip_denoised", "Clip the x0 predictions to [-1, 1].", r => r.Options.ClipDenoised, (r, v) => r with { Options = r.Options with { ClipDenoised = v } });
        Table.Add("seed", "Noise seed; a seed gives the same numbers on every run.", r => r.Options.Seed, (r, v) => r with { Options = r.Options with { Seed = v } });
        Table.Add("log_dir", "Where vb_terms.npz, mse_terms.npz, xstart_mse_terms.npz and nll.json go (default: the checkpoint's folder).", r => r.LogDir, (r, v) => r with { LogDir = v });
        Table.Add("num_workers", "Image decoding threads (0: on the main thread).", r => r.Options.NumWorkers, (r, v) => r with { Options = r.Options with { NumWorkers = v } });
    }

    public static Command Create()
    {
        var command = new Command("image-nll", "Bits per dimension of a diffusion model on images: the variational bound, per timestep and in total (image_nll.py).");
        var flags = Table.AddTo(command, new Request());
        var model = DiffusionModelFlags.AddTo(command);
        var run = RunFlags.AddDeviceTo(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var request = flags.Bind(parse);
            var path = request.ModelPath;
            if (path.Length == 0) throw new ConfigurationException("model_path", "is required: the diffusion model checkpoint.");
            var options = request.Options;
            options.Validate();
            var device = run.Bind(parse).ComputeOn();

            Console.WriteLine("creating model and diffusion...");
            using var trained = TrainedDiffusionModel.Load(path, model.BindModel(parse), model.Diffusion.Bind(parse), model.SettingsGiven(parse), device);
            if (trained.Sidecar is not null) Console.WriteLine($"architecture and noise process from {trained.Sidecar}");

            Console.WriteLine("creating data loader...");
            var directory = request.DataDir;
            IImageSource source = directory.Length == 0 ? FashionMnistDemo.Load().Validation : new ImageFolderSource(directory);
            if (directory.Length == 0) Console.WriteLine($"No --data_dir given: the Fashion-MNIST demo's validation split ({source.Count} images).");

            Console.WriteLine("evaluating...");
            var result = ImageNllJob.Run(trained.Model, ReverseProcess.For(trained.Diffusion), source, options, Console.WriteLine);
            var outDir = request.LogDir is { Length: > 0 } given ? given : Path.GetDirectoryName(Path.GetFullPath(path))!;
            ImageNllJob.WriteFiles(result, outDir, Console.WriteLine);
            Console.WriteLine("evaluation complete");
            foreach (var (key, value) in result.Summary())
                Console.WriteLine($"| {key,-14} | {value.ToString("G6", CultureInfo.InvariantCulture),12} |");
            return 0;
        }));
        return command;
    }
}
