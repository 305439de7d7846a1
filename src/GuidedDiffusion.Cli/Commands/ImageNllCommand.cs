using GuidedDiffusion.Checkpoints;
using System.CommandLine;
using System.Globalization;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// <c>guided-diffusion image-nll</c>: the original's <c>scripts/image_nll.py</c>. The bits per dimension of a
/// diffusion model on an image folder (the variational bound: prior + every per-timestep term), with the original's
/// log lines and <c>*_terms.npz</c> files, plus nll.json (total, prior, VB per t-quartile).
/// </summary>
internal static class ImageNllCommand
{
    private static readonly ImageNllOptions O = new();

    public static Command Create()
    {
        var model = new DiffusionModelFlags();
        var modelPath = Flags.Create("model_path", "", "Diffusion model checkpoint (.pt or .safetensors); its JSON sidecar, if any, supplies the architecture and noise process.");
        var dataDir = Flags.Create("data_dir", "", "Image folder (empty: the Fashion-MNIST demo's 1,000-image validation split).");
        var batchSize = Flags.Create("batch_size", O.BatchSize, "Images per calc_bpd_loop batch.");
        var numSamples = Flags.Create("num_samples", O.NumSamples, "Evaluate until this many images are done (whole batches; the data restarts if it runs out).");
        var clipDenoised = Flags.Create("clip_denoised", O.ClipDenoised, "Clip the x0 predictions to [-1, 1].");
        var seed = Flags.Create("seed", (int)O.Seed, "Noise seed; a seed gives the same numbers on every run.");
        var logDir = Flags.Create("log_dir", "", "Where vb_terms.npz, mse_terms.npz, xstart_mse_terms.npz and nll.json go (default: the checkpoint's folder).");
        var numWorkers = Flags.Create("num_workers", O.NumWorkers, "Image decoding threads (0: on the main thread).");

        var command = new Command("image-nll", "Bits per dimension of a diffusion model on images: the variational bound, per timestep and in total (image_nll.py).");
        foreach (var option in new Option[] { modelPath, dataDir, batchSize, numSamples, clipDenoised, seed, logDir, numWorkers })
            command.Options.Add(option);
        model.AddTo(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var path = parse.GetValue(modelPath) ?? "";
            if (path.Length == 0) throw new ConfigurationException("model_path", "is required: the diffusion model checkpoint.");
            var options = new ImageNllOptions
            {
                NumSamples = parse.GetValue(numSamples),
                BatchSize = parse.GetValue(batchSize),
                ClipDenoised = parse.GetValue(clipDenoised),
                Seed = parse.GetValue(seed),
                NumWorkers = parse.GetValue(numWorkers),
            };
            options.Validate();

            Console.WriteLine("creating model and diffusion...");
            var flagsGiven = model.All.Concat(model.DiffusionOptions.All)
                .Where(o => o != model.DiffusionOptions.TimestepRespacing).Any(parse.WasGiven);
            using var trained = TrainedDiffusionModel.Load(path, model.Model(parse), model.Diffusion(parse), flagsGiven);
            if (trained.Sidecar is not null) Console.WriteLine($"architecture and noise process from {trained.Sidecar}");

            Console.WriteLine("creating data loader...");
            var directory = parse.GetValue(dataDir) ?? "";
            IImageSource source = directory.Length == 0 ? FashionMnistDemo.Load().Validation : new ImageFolderSource(directory);
            if (directory.Length == 0) Console.WriteLine($"No --data_dir given: the Fashion-MNIST demo's validation split ({source.Count} images).");

            Console.WriteLine("evaluating...");
            var result = ImageNllJob.Run(trained.Model, ReverseProcess.For(trained.Diffusion), source, options, Console.WriteLine);
            var outDir = parse.GetValue(logDir) is { Length: > 0 } given ? given : Path.GetDirectoryName(Path.GetFullPath(path))!;
            ImageNllJob.WriteFiles(result, outDir, Console.WriteLine);
            Console.WriteLine("evaluation complete");
            foreach (var (key, value) in result.Summary())
                Console.WriteLine($"| {key,-14} | {value.ToString("G6", CultureInfo.InvariantCulture),12} |");
            return 0;
        }));
        return command;
    }
}
