using System.CommandLine;
using GuidedDiffusion.Evaluation;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// <c>guided-diffusion classifier-eval</c>: a checkpoint's loss, accuracy, calibration and guidance-gradient norm at
/// each noise level over a whole validation set; prints a table and writes eval.csv, eval.json and eval.png.
/// </summary>
internal static class ClassifierEvalCommand
{
    /// <summary>The evaluation flags, bound to <see cref="NoiseLevelEvaluationOptions"/> and its <see cref="EvaluationOptions"/>.</summary>
    public static readonly FlagTable<NoiseLevelEvaluationOptions> Table = new();

    static ClassifierEvalCommand()
    {
        Table.Add(DataFlags.DataDir, o => o.DataDir, (o, v) => o with { DataDir = v });
        Table.Add("num_t_bins", "Evaluate at the centres of this many equal-width timestep bins over [0, T).",
            o => o.Evaluation.NumTBins, (o, v) => o with { Evaluation = o.Evaluation with { NumTBins = v } });
        Table.Add<IReadOnlyList<int>?, string>("timesteps", "Explicit timesteps, comma separated (e.g. 0,100,500); overrides --num_t_bins.",
            o => o.Evaluation.Timesteps, (o, v) => o with { Evaluation = o.Evaluation with { Timesteps = v } },
            text => EvaluationOptions.ParseTimesteps(text) is { Length: > 0 } timesteps ? timesteps : null, v => v is null ? "" : string.Join(",", v));
        Table.Add("noise_repeats", "Independent noise draws per image and timestep.",
            o => o.Evaluation.NoiseRepeats, (o, v) => o with { Evaluation = o.Evaluation with { NoiseRepeats = v } });
        Table.Add(DataFlags.BatchSize, o => o.Evaluation.BatchSize, (o, v) => o with { Evaluation = o.Evaluation with { BatchSize = v } });
        Table.Add("grad_chunk_size", "Images per backward pass for the guidance-gradient norm (bounds memory).",
            o => o.Evaluation.GradChunkSize, (o, v) => o with { Evaluation = o.Evaluation with { GradChunkSize = v } });
        Table.Add("grad_norm", "Compute the mean norm of the guidance gradient ∇x log p(y|x_t) (False: forward passes only).",
            o => o.Evaluation.ComputeGradNorm, (o, v) => o with { Evaluation = o.Evaluation with { ComputeGradNorm = v } });
        Table.Add(SeedFlags.Seed, o => o.Evaluation.Seed, (o, v) => o with { Evaluation = o.Evaluation with { Seed = v } });
        Table.Add(OutputFlags.LogDir, o => o.LogDir, (o, v) => o with { LogDir = v }, help: "Where eval.csv, eval.json and eval.png go (default: the checkpoint's folder).");
        Table.Add(DataFlags.LabelFrom, o => o.LabelFrom, (o, v) => o with { LabelFrom = v });
        Table.Add(DataFlags.NumWorkers, o => o.Evaluation.NumWorkers, (o, v) => o with { Evaluation = o.Evaluation with { NumWorkers = v } });
    }

    public static Command Create()
    {
        var command = new Command("classifier-eval", "Evaluate a classifier at each noise level: loss, acc@1/acc@5, calibration (ECE), guidance-gradient norm and (with --attack_eps) robust acc@1 vs t.");
        var source = ClassifierSourceFlags.AddTo(command);
        var evaluation = Table.AddTo(command, new NoiseLevelEvaluationOptions());
        var run = RunFlags.AddDeviceTo(command);
        var attack = AttackFlags.AddForEvaluation(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var options = evaluation.Bind(parse) with { Classifier = source.Bind(parse) };
            options = options with { Evaluation = options.Evaluation with { Attack = attack.Options(parse) } };
            var result = new NoiseLevelEvaluationJob(options, JobRun.For(parse, run))
            {
                OnBatch = (done, total) =>
                {
                    if (!Console.IsErrorRedirected) CliConsole.Error.Write($"\rbatch {done}/{total}");
                    if (!Console.IsErrorRedirected && done == total) CliConsole.Error.WriteLine();
                },
            }.Run();
            CliConsole.Out.Write(result.Report.FormatTable());
            foreach (var file in result.Files)
                CliConsole.Out.WriteLine($"wrote {file}");
            return 0;
        }));
        return command;
    }
}
