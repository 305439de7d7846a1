using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Guidance;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// <c>guided-diffusion sample-eval</c>: judges sample files from <c>classifier-sample</c> with an independent
/// classifier (usually a clean one, trained with <c>--noised False</c>) and reports how often it labels a sample
/// as the class that was requested: the measured effect of classifier guidance.
/// </summary>
internal static class SampleEvalCommand
{
    public static Command Create()
    {
        var model = new ModelFlags();
        var modelPath = Flags.Create("model_path", "", "The judging classifier checkpoint (.pt or .safetensors); its JSON sidecar, if any, supplies the architecture.");
        var timestep = Flags.Create("timestep", 0, "Timestep given to the judge (0 for a clean classifier).");
        var batchSize = Flags.Create("batch_size", 100, "Images per forward pass.");
        var grid = Flags.Create("grid", false, "Also write, per sample file, FILE_by_class.png: one row per requested class (up to --grid_columns samples each).");
        var gridColumns = Flags.Create("grid_columns", 10, "Samples per class row in the --grid images.");
        var json = Flags.Create("json", "", "Also write the results (overall, per class, per sample) to this JSON file.");
        var files = new Argument<string[]>("SAMPLES") { Description = "samples_NxHxWx3.npz files written by classifier-sample (arr_0 images, arr_1 requested classes).", Arity = ArgumentArity.OneOrMore };

        var command = new Command("sample-eval", "Measure how often an independent classifier labels guided samples as the requested class.");
        foreach (var option in new Option[] { modelPath, timestep, batchSize, grid, gridColumns, json }) command.Options.Add(option);
        model.AddTo(command);
        command.Arguments.Add(files);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var path = parse.GetValue(modelPath) ?? "";
            if (path.Length == 0) throw new ConfigurationException("model_path", "is required: the classifier that judges the samples.");
            int batch = parse.GetValue(batchSize), columns = parse.GetValue(gridColumns);
            if (batch <= 0) throw new ConfigurationException("batch_size", $"must be positive, got {batch}.");
            if (columns <= 0) throw new ConfigurationException("grid_columns", $"must be positive, got {columns}.");
            using var judge = TrainedClassifier.Load(path, model.Classifier(parse), model.Diffusion(parse), model.AnyArchitectureFlagGiven(parse));
            int t = parse.GetValue(timestep);
            int steps = judge.Diffusion.Build().NumTimesteps;
            if (t < 0 || t >= steps) throw new ConfigurationException("timestep", $"must lie in [0, {steps}) for the judge's diffusion, got {t}.");
            bool writeGrid = parse.GetValue(grid);

            var results = new List<(string Name, SampleAgreement Agreement)>();
            foreach (var file in parse.GetValue(files)!)
            {
                var (images, labels, size) = ReadSamples(file, judge.Config.ImageSize, judge.Config.NumClasses);
                var agreement = SampleAgreement.Measure(judge.Model, images, labels, t, batch);
                results.Add((file, agreement));
                if (writeGrid)
                {
                    var rows = Enumerable.Range(0, judge.Config.NumClasses)
                        .Select(c => (IReadOnlyList<int>)Enumerable.Range(0, labels.Length).Where(i => labels[i] == c).Take(columns).ToArray())
                        .Where(r => r.Count > 0).ToArray();
                    var png = Path.ChangeExtension(file, null) + "_by_class.png";
                    ImageGrid.WriteRows(png, images, labels.Length, size, size, rows);
                    Console.WriteLine($"wrote {png} (rows: requested classes {string.Join(", ", rows.Select(r => labels[r[0]]))})");
                }
            }

            Console.Write(SampleAgreement.FormatTable(results));
            Console.WriteLine($"(judge: {path}, t = {t}; agree@1 = fraction labelled as the requested class)");
            if (results.Count == 1)
            {
                Console.WriteLine("per requested class (samples, agree@1):");
                var a = results[0].Agreement;
                for (int c = 0; c < a.PerClass.Count; c++)
                    if (a.PerClass[c].Count > 0)
                        Console.WriteLine($"  {c,4}  {judge.Classes[c],-16} {a.PerClass[c].Count,5}  {a.PerClass[c].Top1.ToString("0.000", CultureInfo.InvariantCulture)}");
            }
            var jsonPath = parse.GetValue(json) ?? "";
            if (jsonPath.Length > 0)
            {
                var document = results.Select(r => new
                {
                    file = r.Name,
                    samples = r.Agreement.Samples,
                    agree_top1 = r.Agreement.Top1,
                    agree_top5 = r.Agreement.Top5,
                    mean_probability = r.Agreement.MeanProbability,
                    per_class = r.Agreement.PerClass.Select((p, c) => new { @class = c, name = judge.Classes[c], samples = p.Count, agree_top1 = p.Count > 0 ? p.Top1 : (double?)null }),
                    predicted = r.Agreement.Predicted,
                }).ToArray();
                AtomicFile.Write(jsonPath, stream => JsonSerializer.Serialize(stream, new { judge = path, timestep = t, results = document },
                    new JsonSerializerOptions { WriteIndented = true }));
            }
            return 0;
        }));
        return command;
    }

    /// <summary>arr_0 (uint8 N×S×S×3) and arr_1 (labels) of a sample file, checked against the judge.</summary>
    private static (byte[] Images, long[] Labels, int Size) ReadSamples(string file, int judgeSize, int judgeClasses)
    {
        var arrays = NpzReader.Read(file);
        if (!arrays.TryGetValue("arr_0", out var images) || !arrays.TryGetValue("arr_1", out var labelArray))
            throw new InvalidDataException($"'{file}' lacks arr_0 (images) or arr_1 (requested classes); classifier-sample writes both.");
        if (images.Descr is not ("|u1" or "<u1") || images.Shape.Length != 4 || images.Shape[3] != 3 || images.Shape[1] != images.Shape[2])
            throw new InvalidDataException($"'{file}' arr_0 must be uint8 N×S×S×3 images, got {images.Descr} ({string.Join(", ", images.Shape)}).");
        if (images.Shape[1] != judgeSize)
            throw new ConfigurationException("model_path", $"the judge takes {judgeSize}-pixel images but '{file}' holds {images.Shape[1]}-pixel samples.");
        var labels = NpzReader.ToInt64(labelArray);
        if (labels.Length != images.Shape[0])
            throw new InvalidDataException($"'{file}' has {images.Shape[0]} images but {labels.Length} labels.");
        foreach (var y in labels)
            if (y < 0 || y >= judgeClasses)
                throw new InvalidDataException($"'{file}' requests class {y}, but the judge has classes 0..{judgeClasses - 1}.");
        return (images.Data, labels, judgeSize);
    }
}
