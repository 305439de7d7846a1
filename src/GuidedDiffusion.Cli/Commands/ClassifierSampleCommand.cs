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
        var c = new ClassifierConfig();
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

        var classifierUseFp16 = Flags.Create("classifier_use_fp16", c.UseFp16, "Classifier trunk in float16 (GPU only; ignored with a warning on CPU).");
        var width = Flags.Create("classifier_width", c.Width, "Classifier base channel count.");
        var depth = Flags.Create("classifier_depth", c.Depth, "Classifier ResBlocks per level.");
        var attention = Flags.Create("classifier_attention_resolutions", c.AttentionResolutions, "Classifier attention resolutions, comma separated.");
        var scaleShift = Flags.Create("classifier_use_scale_shift_norm", c.UseScaleShiftNorm, "Classifier uses scale-shift norm.");
        var updown = Flags.Create("classifier_resblock_updown", c.ResblockUpdown, "Classifier down-samples with ResBlocks.");
        var pool = Flags.Create("classifier_pool", c.Pool, "Classifier head: adaptive, attention, spatial or spatial_v2.");
        var classifierChannelMult = Flags.Create("classifier_channel_mult", "", "Classifier channel multipliers (default: the original's for the image size).");
        var classifierHeadChannels = Flags.Create("classifier_num_head_channels", c.NumHeadChannels, "Classifier channels per attention head (the original: 64).");
        var classifierClasses = Flags.Create("classifier_num_classes", 0, "Classifier outputs (0: read from the checkpoint).");
        var classifierArchitecture = new Option[] { width, depth, attention, scaleShift, updown, pool, classifierChannelMult, classifierHeadChannels, classifierClasses };

        var command = new Command("classifier-sample", "Sample images from a diffusion model guided by a noise-aware classifier (classifier_sample.py).");
        foreach (var option in new Option[] { modelPath, classifierPath, classifierScale, numSamples, batchSize, useDdim, clipDenoised, classId, seed, outDir, classifierUseFp16 })
            command.Options.Add(option);
        foreach (var option in classifierArchitecture) command.Options.Add(option);
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
                Classifier = new ClassifierConfig
                {
                    Width = parse.GetValue(width),
                    Depth = parse.GetValue(depth),
                    AttentionResolutions = parse.GetValue(attention) ?? "",
                    UseScaleShiftNorm = parse.GetValue(scaleShift),
                    ResblockUpdown = parse.GetValue(updown),
                    Pool = parse.GetValue(pool) ?? "",
                    ChannelMult = string.IsNullOrWhiteSpace(parse.GetValue(classifierChannelMult)) ? null : parse.GetValue(classifierChannelMult),
                    NumHeadChannels = parse.GetValue(classifierHeadChannels),
                    NumClasses = parse.GetValue(classifierClasses),
                },
                ClassifierSettingsGiven = classifierArchitecture.Any(parse.WasGiven),
                ClassifierUseFp16 = parse.GetValue(classifierUseFp16),
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
