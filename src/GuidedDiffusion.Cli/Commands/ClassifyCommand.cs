using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Transforms;
using static TorchSharp.torch;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// <c>guided-diffusion classify</c>: centre-crops images like the validation loader, optionally noises them to
/// step T, and prints the top classes of a classifier checkpoint.
/// </summary>
internal static class ClassifyCommand
{
    public static Command Create()
    {
        var model = new ModelFlags();
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
            var path = parse.GetValue(modelPath) ?? "";
            if (path.Length == 0) throw new ConfigurationException("model_path", "is required: the classifier checkpoint to use.");
            using var classifier = TrainedClassifier.Load(path, model.Classifier(parse), model.Diffusion(parse), model.AnyArchitectureFlagGiven(parse));
            var diffusion = classifier.Diffusion.Build();
            int t = parse.GetValue(timestep);
            if (t < 0 || t >= diffusion.NumTimesteps)
                throw new ConfigurationException("timestep", $"must lie in [0, {diffusion.NumTimesteps}) for this diffusion, got {t}.");

            var results = new List<object>();
            foreach (var file in parse.GetValue(images)!)
            {
                using var scope = NewDisposeScope();
                int size = classifier.Config.ImageSize;
                var pixels = ToTensorLayout.NormalizeToChw(CenterCrop.Apply(ImageDecoder.Decode(file), size));
                var x = tensor(pixels).reshape(1, 3, size, size);
                var ts = tensor(new long[] { t });
                if (parse.GetValue(noiseSeed) is var seed and >= 0)
                {
                    var generator = new Generator((ulong)seed);
                    x = diffusion.QSample(x, ts, randn(x.shape, generator: generator));
                }
                var logits = classifier.Logits(x, ts)[0];
                var probs = logits.softmax(0);
                int k = Math.Min(5, classifier.Config.NumClasses);
                var top = probs.topk(k);
                var indices = top.indexes.data<long>().ToArray();
                var values = top.values.data<float>().ToArray();
                var entries = indices.Select((c, i) => new { @class = (int)c, name = classifier.Classes[(int)c], prob = values[i] }).ToArray();
                if (parse.GetValue(json))
                    results.Add(new { path = file, logits = logits.data<float>().ToArray(), top = entries });
                else
                {
                    Console.WriteLine(file);
                    foreach (var e in entries)
                        Console.WriteLine($"  {e.@class,5}  {e.prob.ToString("0.0000", CultureInfo.InvariantCulture)}  {e.name}");
                }
            }
            if (parse.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(results));
            return 0;
        }));
        return command;
    }
}
