using System.CommandLine;
using System.Globalization;
using GuidedDiffusion.Evaluation;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// <c>guided-diffusion sample-eval</c>: judges sample files from <c>classifier-sample</c> with an independent
/// classifier (usually a clean one, trained with <c>--noised False</c>) and reports how often it labels a sample
/// as the class that was requested: the measured effect of classifier guidance.
/// </summary>
internal static class SampleEvalCommand
{
    private static readonly SampleAgreementOptions O = new();

    public static Command Create()
    {
        var model = new ClassifierModelFlags();
        var modelPath = Flags.Create("model_path", "", "The judging classifier checkpoint (.pt or .safetensors); its JSON sidecar, if any, supplies the architecture.");
        var timestep = Flags.Create("timestep", 0, "Timestep given to the judge (0 for a clean classifier).");
        var batchSize = Flags.Create("batch_size", 100, "Images per forward pass.");
        var grid = Flags.Create("grid", false, "Also write, per sample file, FILE_by_class.png: one row per requested class (up to --grid_columns samples each).");
        var gridColumns = Flags.Create("grid_columns", 10, "Samples per class row in the --grid images.");
        var json = Flags.Create("json", "", "Also write the results (overall, per class, per sample) to this JSON file.");
        var reference = Flags.Create("reference", O.Reference, "Also judge real images against their true classes (the judge's accuracy, and the diversity of real images of one class), printed once as the reference row.");
        var referenceDir = Flags.Create("reference_dir", O.ReferenceDir, "Folder of real images for --reference, labelled by file-name prefix with the judge's class names (empty: the bundled Fashion-MNIST validation split, for a 10-class judge).");
        var referenceSamples = Flags.Create("reference_samples", O.ReferenceSamples, "At most this many real images (the first ones) for --reference.");
        var files = new Argument<string[]>("SAMPLES") { Description = "samples_NxHxWx3.npz files written by classifier-sample (arr_0 images, arr_1 requested classes).", Arity = ArgumentArity.OneOrMore };

        var command = new Command("sample-eval", "Measure how often an independent classifier labels guided samples as the requested class.");
        foreach (var option in new Option[] { modelPath, timestep, batchSize, grid, gridColumns, json, reference, referenceDir, referenceSamples }) command.Options.Add(option);
        model.AddTo(command);
        command.Arguments.Add(files);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var report = new SampleAgreementJob(new SampleAgreementOptions
            {
                Judge = model.Source(parse, modelPath),
                Timestep = parse.GetValue(timestep),
                BatchSize = parse.GetValue(batchSize),
                Grid = parse.GetValue(grid),
                GridColumns = parse.GetValue(gridColumns),
                JsonPath = parse.GetValue(json) ?? "",
                Files = parse.GetValue(files)!,
                Reference = parse.GetValue(reference),
                ReferenceDir = parse.GetValue(referenceDir) ?? "",
                ReferenceSamples = parse.GetValue(referenceSamples),
            }, Console.Out).Run();
            Console.Write(SampleAgreement.FormatTable(report.Agreements, report.ReferenceAgreement));
            Console.WriteLine($"(judge: {report.Judge}, t = {report.Timestep}; agree@1 = fraction labelled as the requested class, with its 95% Wilson interval; "
                + "diversity = mean pairwise distance of the judge's penultimate features within a requested class, averaged over classes)");
            if (report.ReferenceNote.Length > 0) Console.WriteLine(report.ReferenceNote);
            if (report.Results.Count == 1)
            {
                Console.WriteLine("per requested class (samples, agree@1, diversity):");
                foreach (var c in report.Results[0].PerClass.Where(c => c.Samples > 0))
                    Console.WriteLine($"  {c.Class,4}  {c.Name,-16} {c.Samples,5}  {c.AgreeTop1!.Value.ToString("0.000", CultureInfo.InvariantCulture)}  "
                        + (c.Diversity is { } d ? d.ToString("0.000", CultureInfo.InvariantCulture) : "-"));
            }
            return 0;
        }));
        return command;
    }
}
