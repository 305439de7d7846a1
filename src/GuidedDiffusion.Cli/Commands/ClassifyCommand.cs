using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using GuidedDiffusion.Evaluation;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// <c>guided-diffusion classify</c>: centre-crops images like the validation loader, optionally noises them to
/// step T, and prints the top classes of a classifier checkpoint.
/// </summary>
internal static class ClassifyCommand
{
    /// <summary>What classify prints.</summary>
    public sealed record Output
    {
        public bool Json { get; init; }
    }

    /// <summary>The noise flags, bound to <see cref="ClassificationOptions"/>.</summary>
    public static readonly FlagTable<ClassificationOptions> Table = new();

    /// <summary>The output flag.</summary>
    public static readonly FlagTable<Output> OutputTable = new();

    static ClassifyCommand()
    {
        Table.Add(NoiseLevelFlags.Timestep, o => o.Timestep, (o, v) => o with { Timestep = v });
        Table.Add<long?, int>("noise_seed", "Noise the image to step t with q_sample and seeded noise (-1: give the clean image with timestep t).",
            o => o.NoiseSeed, (o, v) => o with { NoiseSeed = v }, seed => seed >= 0 ? seed : null, seed => (int)(seed ?? -1));
        OutputTable.Add("json", "Print a JSON array: path, logits and top classes per image.", o => o.Json, (o, v) => o with { Json = v });
    }

    public static Command Create()
    {
        var command = new Command("classify", "Classify images (optionally noised to step t) with a classifier checkpoint.");
        var source = ClassifierSourceFlags.AddTo(command);
        var noise = Table.AddTo(command, new ClassificationOptions());
        var output = OutputTable.AddTo(command, new Output());
        var run = RunFlags.AddDeviceTo(command);
        var images = new Argument<string[]>("IMAGE") { Description = "Image files (jpg, png, gif).", Arity = ArgumentArity.OneOrMore };
        command.Arguments.Add(images);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var results = new ClassificationJob(noise.Bind(parse) with { Classifier = source.Bind(parse), Images = parse.GetValue(images)! }, JobRun.For(parse, run)).Run();
            if (output.Bind(parse).Json)
            {
                CliConsole.Out.WriteLine(JsonSerializer.Serialize(results));
                return 0;
            }
            foreach (var result in results)
            {
                CliConsole.Out.WriteLine(result.Path);
                foreach (var e in result.Top)
                    CliConsole.Out.WriteLine($"  {e.Class,5}  {e.Prob.ToString("0.0000", CultureInfo.InvariantCulture)}  {e.Name}");
            }
            return 0;
        }));
        return command;
    }
}
