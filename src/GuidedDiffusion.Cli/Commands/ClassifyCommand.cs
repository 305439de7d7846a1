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
    public static Command Create()
    {
        var model = new ClassifierModelFlags();
        var modelPath = Flags.Create("model_path", "", "Classifier checkpoint (.pt or .safetensors); its JSON sidecar, if any, supplies the architecture.");
        var timestep = Flags.Create("timestep", 0, "Timestep t given to the classifier (spaced index of the training diffusion).");
        var noiseSeed = Flags.Create("noise_seed", -1, "Noise the image to step t with q_sample and seeded noise (-1: give the clean image with timestep t).");
        var json = Flags.Create("json", false, "Print a JSON array: path, logits and top classes per image.");
        var images = new Argument<string[]>("IMAGE") { Description = "Image files (jpg, png, gif).", Arity = ArgumentArity.OneOrMore };

        var command = new Command("classify", "Classify images (optionally noised to step t) with a classifier checkpoint.");
        command.Options.Add(modelPath);
        command.Options.Add(timestep);
        command.Options.Add(noiseSeed);
        command.Options.Add(json);
        model.AddTo(command);
        command.Arguments.Add(images);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var results = ClassificationJob.Run(new ClassificationOptions
            {
                Classifier = model.Source(parse, modelPath),
                Timestep = parse.GetValue(timestep),
                NoiseSeed = parse.GetValue(noiseSeed) is var seed and >= 0 ? seed : null,
                Images = parse.GetValue(images)!,
            });
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(results));
                return 0;
            }
            foreach (var result in results)
            {
                Console.WriteLine(result.Path);
                foreach (var e in result.Top)
                    Console.WriteLine($"  {e.Class,5}  {e.Prob.ToString("0.0000", CultureInfo.InvariantCulture)}  {e.Name}");
            }
            return 0;
        }));
        return command;
    }
}
