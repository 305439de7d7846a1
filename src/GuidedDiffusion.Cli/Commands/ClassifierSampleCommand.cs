using System.CommandLine;
using System.Diagnostics;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// <c>guided-diffusion classifier-sample</c>: the original's <c>scripts/classifier_sample.py</c>. Loads a diffusion
/// model and a noise-aware classifier, samples with classifier guidance (ancestral or DDIM), and writes the
/// original's <c>samples_NxHxWx3.npz</c> (arr_0: uint8 NHWC images, arr_1: int64 labels) plus a PNG grid.
/// </summary>
internal static class ClassifierSampleCommand
{
    public static Command Create()
    {
        var model = new DiffusionModelFlags();
        var modelPath = Flags.Create("model_path", "", "Diffusion model checkpoint (.pt or .safetensors), e.g. 64x64_diffusion.pt.");
        var classifierPath = Flags.Create("classifier_path", "", "Classifier checkpoint; its JSON sidecar, if any, supplies the classifier architecture.");
        var classifierScale = Flags.Create("classifier_scale", 1.0, "Guidance scale: the classifier gradient is multiplied by it (0 disables guidance).");
        var numSamples = Flags.Create("num_samples", 10000, "Number of images to generate.");
        var batchSize = Flags.Create("batch_size", 16, "Images per sampling batch.");
        var useDdim = Flags.Create("use_ddim", false, "DDIM steps (eta 0) instead of ancestral sampling; pair with --timestep_respacing ddimN.");
        var clipDenoised = Flags.Create("clip_denoised", true, "Clip the x0 predictions to [-1, 1].");
        var classId = Flags.Create("class_id", -1, "Class to generate (-1: a random class per image, like the original).");
        var seed = Flags.Create("seed", 0, "Seed for the classes and every noise draw; the same seed gives the same samples.");
        var outDir = Flags.Create("out_dir", "samples", "Folder for samples_NxHxWx3.npz and the PNG grid (created if missing).");

        var classifierFlags = new ClassifierModelFlags(besideDiffusionModel: true);

        var command = new Command("classifier-sample", "Sample images from a diffusion model guided by a noise-aware classifier (classifier_sample.py).");
        foreach (var option in new Option[] { modelPath, classifierPath, classifierScale, numSamples, batchSize, useDdim, clipDenoised, classId, seed, outDir })
            command.Options.Add(option);
        classifierFlags.AddTo(command);
        model.AddTo(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var options = new GuidedSamplingOptions
            {
                ModelPath = parse.GetValue(modelPath) ?? "",
                ClassifierPath = parse.GetValue(classifierPath) ?? "",
                Model = model.Model(parse),
                Diffusion = model.Diffusion(parse),
                // The respacing applies to any checkpoint; only the other model flags compete with a sidecar.
                ModelSettingsGiven = model.All.Concat(model.DiffusionOptions.All).Where(o => o != model.DiffusionOptions.TimestepRespacing).Any(parse.WasGiven),
                Classifier = classifierFlags.Classifier(parse),
                ClassifierSettingsGiven = classifierFlags.AnyArchitectureFlagGiven(parse),
                ClassifierScale = parse.GetValue(classifierScale),
                NumSamples = parse.GetValue(numSamples),
                BatchSize = parse.GetValue(batchSize),
                UseDdim = parse.GetValue(useDdim),
                ClipDenoised = parse.GetValue(clipDenoised),
                ClassId = parse.GetValue(classId) is var id and >= 0 ? id : null,
                Seed = parse.GetValue(seed),
                OutDir = parse.GetValue(outDir) ?? "samples",
            };
            bool interactive = !Console.IsErrorRedirected;
            var clock = Stopwatch.StartNew();
            new GuidedSamplingJob(options, Console.Out, Console.Error)
            {
                OnStep = (batch, batches, step, total) =>
                {
                    if (interactive) Console.Error.Write($"\rbatch {batch + 1}/{batches}  step {step}/{total}  {clock.Elapsed:hh\\:mm\\:ss}");
                },
                OnBatch = () => { if (interactive) Console.Error.WriteLine(); },
            }.Run();
            return 0;
        }));
        return command;
    }
}
