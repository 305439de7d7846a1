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
    /// <summary>The judging flags, bound to <see cref="SampleAgreementOptions"/>.</summary>
    public static readonly FlagTable<SampleAgreementOptions> Table = new();

    static SampleEvalCommand()
    {
        Table.Add(NoiseLevelFlags.Timestep, o => o.Timestep, (o, v) => o with { Timestep = v });
        Table.Add(DataFlags.BatchSize, o => o.BatchSize, (o, v) => o with { BatchSize = v });
        Table.Add("grid", "Also write, per sample file, FILE_by_class.png: one row per requested class (up to --grid_columns samples each).", o => o.Grid, (o, v) => o with { Grid = v });
        Table.Add("grid_columns", "Samples per class row in the --grid images.", o => o.GridColumns, (o, v) => o with { GridColumns = v });
        Table.Add("json", "Also write the results (overall, per class, per sample) to this JSON file.", o => o.JsonPath, (o, v) => o with { JsonPath = v });
        Table.Add("reference", "Also judge real images against their true classes (the judge's accuracy, and the diversity of real images of one class), printed once as the reference row.", o => o.Reference, (o, v) => o with { Reference = v });
        Table.Add("reference_dir", "Folder of real images for --reference, labelled by file-name prefix with the judge's class names (empty: the bundled Fashion-MNIST validation split, for a 10-class judge).", o => o.ReferenceDir, (o, v) => o with { ReferenceDir = v });
        Table.Add("reference_samples", "At most this many real images (the first ones) for --reference.", o => o.ReferenceSamples, (o, v) => o with { ReferenceSamples = v });
    }

    public static Command Create()
    {
        var command = new Command("sample-eval", "Measure how often an independent classifier labels guided samples as the requested class.");
        var judge = ClassifierSourceFlags.AddTo(command);
        var judging = Table.AddTo(command, new SampleAgreementOptions());
        var run = RunFlags.AddDeviceTo(command);
        var files = new Argument<string[]>("SAMPLES") { Description = "samples_NxHxWx3.npz files written by classifier-sample (arr_0 images, arr_1 requested classes).", Arity = ArgumentArity.OneOrMore };
        command.Arguments.Add(files);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var report = new SampleAgreementJob(judging.Bind(parse) with { Judge = judge.Bind(parse), Files = parse.GetValue(files)! }, JobRun.For(parse, run)).Run();
            CliConsole.Out.Write(SampleAgreement.FormatTable(report.Agreements, report.ReferenceAgreement));
            CliConsole.Out.WriteLine($"(judge: {report.Judge}, t = {report.Timestep}; agree@1 = fraction labelled as the requested class, with its 95% Wilson interval; "
                + "diversity = mean pairwise distance of the judge's penultimate features within a requested class, averaged over classes)");
            if (report.ReferenceNote.Length > 0) CliConsole.Out.WriteLine(report.ReferenceNote);
            if (report.Results.Count == 1)
            {
                CliConsole.Out.WriteLine("per requested class (samples, agree@1, diversity):");
                foreach (var c in report.Results[0].PerClass.Where(c => c.Samples > 0))
                    CliConsole.Out.WriteLine($"  {c.Class,4}  {c.Name,-16} {c.Samples,5}  {c.AgreeTop1!.Value.ToString("0.000", CultureInfo.InvariantCulture)}  "
                        + (c.Diversity is { } d ? d.ToString("0.000", CultureInfo.InvariantCulture) : "-"));
            }
            return 0;
        }));
        return command;
    }
}
