using System.CommandLine;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Evaluation;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// <c>guided-diffusion classifier-eval</c>: a checkpoint's loss, accuracy, calibration and guidance-gradient norm at
/// each noise level over a whole validation set; prints a table and writes eval.csv, eval.json and eval.png.
/// </summary>
internal static class ClassifierEvalCommand
{
    private static readonly EvaluationOptions E = new();

    public static Command Create()
    {
        var model = new ClassifierModelFlags();
        var attack = new AttackFlags(forTraining: false);
        var modelPath = Flags.Create("model_path", "", "Classifier checkpoint (.pt or .safetensors); its JSON sidecar, if any, supplies the architecture and diffusion.");
        var dataDir = Flags.Create("data_dir", "", "Validation image folder (empty: the Fashion-MNIST demo's 1,000-image validation split).");
        var numTBins = Flags.Create("num_t_bins", E.NumTBins, "Evaluate at the centres of this many equal-width timestep bins over [0, T).");
        var timesteps = Flags.Create("timesteps", "", "Explicit timesteps, comma separated (e.g. 0,100,500); overrides --num_t_bins.");
        var noiseRepeats = Flags.Create("noise_repeats", E.NoiseRepeats, "Independent noise draws per image and timestep.");
        var batchSize = Flags.Create("batch_size", E.BatchSize, "Images per batch.");
        var gradChunk = Flags.Create("grad_chunk_size", E.GradChunkSize, "Images per backward pass for the guidance-gradient norm (bounds memory).");
        var gradNorm = Flags.Create("grad_norm", E.ComputeGradNorm, "Compute the mean norm of the guidance gradient ∇x log p(y|x_t) (False: forward passes only).");
        var seed = Flags.Create("seed", (int)E.Seed, "Noise seed; a seed gives the same numbers on every run.");
        var logDir = Flags.Create("log_dir", "", "Where eval.csv, eval.json and eval.png go (default: the checkpoint's folder).");
        var labelFrom = Flags.Create("label_from", "prefix", "Class of an image in --data_dir: prefix (file name before '_') or folder.");
        var numWorkers = Flags.Create("num_workers", E.NumWorkers, "Image decoding threads (0: on the main thread).");

        var command = new Command("classifier-eval", "Evaluate a classifier at each noise level: loss, acc@1/acc@5, calibration (ECE), guidance-gradient norm and (with --attack_eps) robust acc@1 vs t.");
        foreach (var option in new Option[] { modelPath, dataDir, numTBins, timesteps, noiseRepeats, batchSize, gradChunk, gradNorm, seed, logDir, labelFrom, numWorkers })
            command.Options.Add(option);
        model.AddTo(command);
        attack.AddTo(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var options = new NoiseLevelEvaluationOptions
            {
                Classifier = model.Source(parse, modelPath),
                DataDir = parse.GetValue(dataDir) ?? "",
                LabelFrom = LabelRules.Parse(parse.GetValue(labelFrom) ?? ""),
                Evaluation = new EvaluationOptions
                {
                    NumTBins = parse.GetValue(numTBins),
                    Timesteps = EvaluationOptions.ParseTimesteps(parse.GetValue(timesteps) ?? ""),
                    NoiseRepeats = parse.GetValue(noiseRepeats),
                    BatchSize = parse.GetValue(batchSize),
                    GradChunkSize = parse.GetValue(gradChunk),
                    ComputeGradNorm = parse.GetValue(gradNorm),
                    Seed = parse.GetValue(seed),
                    NumWorkers = parse.GetValue(numWorkers),
                    Attack = attack.Options(parse),
                },
                LogDir = parse.GetValue(logDir) ?? "",
            };
            var result = new NoiseLevelEvaluationJob(options, Console.Out)
            {
                OnBatch = (done, total) =>
                {
                    if (!Console.IsErrorRedirected) Console.Error.Write($"\rbatch {done}/{total}");
                    if (!Console.IsErrorRedirected && done == total) Console.Error.WriteLine();
                },
            }.Run();
            Console.Write(result.Report.FormatTable());
            foreach (var file in result.Files)
                Console.WriteLine($"wrote {file}");
            return 0;
        }));
        return command;
    }
}
