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
    /// <summary>What eps-eval reads and where it writes, with the measurement's settings.</summary>
    public sealed record Request
    {
        public string ModelPath { get; init; } = "";
        public string DataDir { get; init; } = "";
        public string LogDir { get; init; } = "";
        public EpsilonErrorOptions Options { get; init; } = new();
    }

    /// <summary>eps-eval's flags, bound to <see cref="Request"/>.</summary>
    public static readonly FlagTable<Request> Table = new();

    static EpsEvalCommand()
    {
        Table.Add("model_path", "Diffusion model checkpoint (.pt or .safetensors); its JSON sidecar, if any, supplies the architecture and noise process.", r => r.ModelPath, (r, v) => r with { ModelPath = v });
        Table.Add("data_dir", "Image folder (empty: the Fashion-MNIST demo's 1,000-image validation split, grey images).", r => r.DataDir, (r, v) => r with { DataDir = v });
        Table.Add<IReadOnlyList<int>, string>("timesteps", "Comma-separated timesteps of the model's process (empty: 0, T/20, T/10, 2T/10, ..., 9T/10, T-1).",
            r => r.Options.Timesteps, (r, v) => r with { Options = r.Options with { Timesteps = v } }, ParseTimesteps, v => string.Join(",", v));
        Table.Add("num_samples", "Images measured (the first ones of the data).", r => r.Options.NumSamples, (r, v) => r with { Options = r.Options with { NumSamples = v } });
        Table.Add("batch_size", "Images per forward pass.", r => r.Options.BatchSize, (r, v) => r with { Options = r.Options with { BatchSize = v } });
        Table.Add("seed", "Noise seed; one draw per image, reused at every timestep.", r => r.Options.Seed, (r, v) => r with { Options = r.Options with { Seed = v } });
        Table.Add("clip_denoised", "Clip the x0 estimate to [-1, 1] before its channel spread is taken (as sampling does).", r => r.Options.ClipDenoised, (r, v) => r with { Options = r.Options with { ClipDenoised = v } });
        Table.Add("log_dir", "Where eps_eval.json and eps_eval.csv go (default: the checkpoint's folder).", r => r.LogDir, (r, v) => r with { LogDir = v });
        Table.Add("num_workers", "Image decoding threads (0: on the main thread).", r => r.Options.NumWorkers, (r, v) => r with { Options = r.Options with { NumWorkers = v } });
    }

    public static Command Create()
    {
        var command = new Command("eps-eval", "Per-channel error of a diffusion model's noise prediction on real images against t: the colour-cast diagnostic.");
        var flags = Table.AddTo(command, new Request());
        var model = DiffusionModelFlags.AddTo(command);
        var run = RunFlags.AddDeviceTo(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var request = flags.Bind(parse);
            if (request.ModelPath.Length == 0) throw new ConfigurationException("model_path", "is required: the diffusion model checkpoint.");
            var diffusion = model.Diffusion.Bind(parse);
            if (diffusion.TimestepRespacing.Length > 0)
                throw new ConfigurationException("timestep_respacing", "does not apply: eps-eval measures the model at the timesteps of the process it was trained on.");
            var flagsGiven = model.Model.GivenSettings(parse).Union(model.Diffusion.GivenSettings(parse)).ToHashSet();
            var device = run.Bind(parse).ComputeOn();
            using var trained = TrainedDiffusionModel.Load(request.ModelPath, model.BindModel(parse), diffusion, flagsGiven, device);
            if (trained.Sidecar is not null) Console.WriteLine($"architecture and noise process from {trained.Sidecar}");

            IImageSource source = request.DataDir.Length == 0 ? FashionMnistDemo.Load().Validation : new ImageFolderSource(request.DataDir);
            if (request.DataDir.Length == 0) Console.WriteLine($"No --data_dir given: the Fashion-MNIST demo's validation split ({source.Count} grey images).");

            var m = trained.Model;
            var result = EpsilonErrorJob.Run((x, t, y) => m.forward(x, t, y), m.IsClassConditional, ReverseProcess.For(trained.Diffusion),
                trained.Config.ImageSize, source, request.Options, Console.WriteLine, device);
            Console.Write(result.FormatTable());
            var outDir = request.LogDir is { Length: > 0 } given ? given : Path.GetDirectoryName(Path.GetFullPath(request.ModelPath))!;
            foreach (var file in EpsilonErrorJob.WriteFiles(result, outDir)) Console.WriteLine($"wrote {file}");
            return 0;
        }));
        return command;
    }

    private static int[] ParseTimesteps(string text) =>
        text.Length == 0 ? [] : text.Split(',').Select(part =>
            int.TryParse(part.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var t)
                ? t
                : throw new ConfigurationException("timesteps", $"{SettingText.Ref("timesteps")} expects comma-separated integers such as 0,100,500; got '{text}'.")).ToArray();
}
