using System.CommandLine;
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
    /// <summary>eps-eval's flags, bound to <see cref="EpsilonErrorOptions"/>.</summary>
    public static readonly FlagTable<EpsilonErrorOptions> Table = new();

    static EpsEvalCommand()
    {
        Table.Add(DataFlags.DataDir, o => o.DataDir, (o, v) => o with { DataDir = v },
            help: "Image folder (empty: the Fashion-MNIST demo's 1,000-image validation split, grey images).");
        Table.Add<IReadOnlyList<int>, string>("timesteps", "Comma-separated timesteps of the model's process (empty: 0, T/20, T/10, 2T/10, ..., 9T/10, T-1).",
            o => o.Timesteps, (o, v) => o with { Timesteps = v }, EvaluationOptions.ParseTimesteps, v => string.Join(",", v));
        Table.Add(DenoisingFlags.NumSamples, o => o.NumSamples, (o, v) => o with { NumSamples = v }, help: "Images measured (the first ones of the data).");
        Table.Add(DataFlags.BatchSize, o => o.BatchSize, (o, v) => o with { BatchSize = v }, help: "Images per forward pass.");
        Table.Add(SeedFlags.Seed, o => o.Seed, (o, v) => o with { Seed = v }, help: "Noise seed; one draw per image, reused at every timestep.");
        Table.Add(DenoisingFlags.ClipDenoised, o => o.ClipDenoised, (o, v) => o with { ClipDenoised = v },
            help: "Clip the x0 estimate to [-1, 1] before its channel spread is taken (as sampling does).");
        Table.Add(OutputFlags.LogDir, o => o.LogDir, (o, v) => o with { LogDir = v }, help: "Where eps_eval.json and eps_eval.csv go (default: the checkpoint's folder).");
        Table.Add(DataFlags.NumWorkers, o => o.NumWorkers, (o, v) => o with { NumWorkers = v });
    }

    public static Command Create()
    {
        var command = new Command("eps-eval", "Per-channel error of a diffusion model's noise prediction on real images against t: the colour-cast diagnostic.");
        var model = DiffusionModelSourceFlags.AddTo(command);
        var flags = Table.AddTo(command, new EpsilonErrorOptions());
        var run = RunFlags.AddDeviceTo(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var result = new EpsilonErrorJob(flags.Bind(parse) with { Model = model.Bind(parse) }, JobRun.For(parse, run)).Run();
            CliConsole.Out.Write(result.FormatTable());
            foreach (var file in result.Files) CliConsole.Out.WriteLine($"wrote {file}");
            return 0;
        }));
        return command;
    }
}
