using System.CommandLine;
using System.Globalization;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// <c>guided-diffusion eps-eval</c>: the colour-cast diagnostic of a diffusion model. Real images are noised to
/// x_t at a grid of t with seeded ε; per channel it reports the mean of ε̂ − ε, the per-image mean error, the MSE
/// and the channel spread of the x₀ estimate (0 for grey images through a grey-preserving model), as a table and
/// as eps_eval.json / eps_eval.csv.
/// </summary>
internal static class EpsEvalCommand
{
    private static readonly EpsilonErrorOptions O = new();

    public static Command Create()
    {
        var model = new DiffusionModelFlags();
        var modelPath = Flags.Create("model_path", "", "Diffusion model checkpoint (.pt or .safetensors); its JSON sidecar, if any, supplies the architecture and noise process.");
        var dataDir = Flags.Create("data_dir", "", "Image folder (empty: the Fashion-MNIST demo's 1,000-image validation split, grey images).");
        var timesteps = Flags.Create("timesteps", "", "Comma-separated timesteps of the model's process (empty: 0, T/20, T/10, 2T/10, ..., 9T/10, T-1).");
        var numSamples = Flags.Create("num_samples", O.NumSamples, "Images measured (the first ones of the data).");
        var batchSize = Flags.Create("batch_size", O.BatchSize, "Images per forward pass.");
        var seed = Flags.Create("seed", (int)O.Seed, "Noise seed; one draw per image, reused at every timestep.");
        var clipDenoised = Flags.Create("clip_denoised", O.ClipDenoised, "Clip the x0 estimate to [-1, 1] before its channel spread is taken (as sampling does).");
        var logDir = Flags.Create("log_dir", "", "Where eps_eval.json and eps_eval.csv go (default: the checkpoint's folder).");
        var numWorkers = Flags.Create("num_workers", O.NumWorkers, "Image decoding threads (0: on the main thread).");

        var command = new Command("eps-eval", "Per-channel error of a diffusion model's noise prediction on real images against t: the colour-cast diagnostic.");
        foreach (var option in new Option[] { modelPath, dataDir, timesteps, numSamples, batchSize, seed, clipDenoised, logDir, numWorkers })
            command.Options.Add(option);
        model.AddTo(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var path = parse.GetValue(modelPath) ?? "";
            if (path.Length == 0) throw new ConfigurationException("model_path", "is required: the diffusion model checkpoint.");
            if ((parse.GetValue(model.DiffusionOptions.TimestepRespacing) ?? "").Length > 0)
                throw new ConfigurationException("timestep_respacing", "does not apply: eps-eval measures the model at the timesteps of the process it was trained on.");
            var flagsGiven = model.All.Concat(model.DiffusionOptions.All).Any(parse.WasGiven);
            using var trained = TrainedDiffusionModel.Load(path, model.Model(parse), model.Diffusion(parse), flagsGiven);
            if (trained.Sidecar is not null) Console.WriteLine($"architecture and noise process from {trained.Sidecar}");
            var options = new EpsilonErrorOptions
            {
                Timesteps = ParseTimesteps(parse.GetValue(timesteps) ?? ""),
                NumSamples = parse.GetValue(numSamples),
                BatchSize = parse.GetValue(batchSize),
                Seed = parse.GetValue(seed),
                ClipDenoised = parse.GetValue(clipDenoised),
                NumWorkers = parse.GetValue(numWorkers),
            };

            var directory = parse.GetValue(dataDir) ?? "";
            IImageSource source = directory.Length == 0 ? FashionMnistDemo.Load().Validation : new ImageFolderSource(directory);
            if (directory.Length == 0) Console.WriteLine($"No --data_dir given: the Fashion-MNIST demo's validation split ({source.Count} grey images).");

            var m = trained.Model;
            var result = EpsilonErrorJob.Run((x, t, y) => m.forward(x, t, y), m.IsClassConditional, ReverseProcess.For(trained.Diffusion),
                trained.Config.ImageSize, source, options, Console.WriteLine);
            Console.Write(result.FormatTable());
            var outDir = parse.GetValue(logDir) is { Length: > 0 } given ? given : Path.GetDirectoryName(Path.GetFullPath(path))!;
            foreach (var file in EpsilonErrorJob.WriteFiles(result, outDir)) Console.WriteLine($"wrote {file}");
            return 0;
        }));
        return command;
    }

    private static int[] ParseTimesteps(string text) =>
        text.Length == 0 ? [] : text.Split(',').Select(part =>
            int.TryParse(part.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var t)
                ? t
                : throw new ConfigurationException("timesteps", $"--timesteps expects comma-separated integers such as 0,100,500; got '{text}'.")).ToArray();
}
