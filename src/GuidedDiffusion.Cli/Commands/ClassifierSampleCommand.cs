using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Models;
using static TorchSharp.torch;

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
            var modelFile = parse.GetValue(modelPath) ?? "";
            var classifierFile = parse.GetValue(classifierPath) ?? "";
            if (modelFile.Length == 0) throw new ConfigurationException("model_path", "is required: the diffusion model checkpoint.");
            if (classifierFile.Length == 0) throw new ConfigurationException("classifier_path", "is required: the classifier checkpoint.");
            int samples = parse.GetValue(numSamples), batch = parse.GetValue(batchSize);
            if (samples <= 0) throw new ConfigurationException("num_samples", $"must be positive, got {samples}.");
            if (batch <= 0) throw new ConfigurationException("batch_size", $"must be positive, got {batch}.");

            // Our checkpoints carry a sidecar with the architecture; the original's need the flags.
            var modelFlagsGiven = model.All.Concat(model.DiffusionOptions.All)
                .Where(o => o != model.DiffusionOptions.TimestepRespacing).Any(parse.WasGiven);
            using var trained = TrainedDiffusionModel.Load(modelFile, model.Model(parse), model.Diffusion(parse), modelFlagsGiven);
            var modelConfig = trained.Config;
            var diffusionConfig = trained.Diffusion;
            if (trained.Sidecar is not null) Console.WriteLine($"diffusion model: architecture and noise process from {trained.Sidecar}");
            var sampler = DiffusionSampler.For(diffusionConfig);
            var unet = trained.Model;
            if (modelConfig.UseFp16 || parse.GetValue(classifierUseFp16))
                Console.Error.WriteLine("warning: --use_fp16/--classifier_use_fp16 are ignored on CPU (float16 is 30-70x slower there); sampling in float32.");

            var classifierFlags = new ClassifierConfig
            {
                ImageSize = modelConfig.ImageSize,
                Width = parse.GetValue(width),
                Depth = parse.GetValue(depth),
                AttentionResolutions = parse.GetValue(attention) ?? "",
                UseScaleShiftNorm = parse.GetValue(scaleShift),
                ResblockUpdown = parse.GetValue(updown),
                Pool = parse.GetValue(pool) ?? "",
                ChannelMult = string.IsNullOrWhiteSpace(parse.GetValue(classifierChannelMult)) ? null : parse.GetValue(classifierChannelMult),
                NumHeadChannels = parse.GetValue(classifierHeadChannels),
                NumClasses = parse.GetValue(classifierClasses),
            };
            using var classifier = TrainedClassifier.Load(classifierFile, classifierFlags, diffusionConfig, classifierArchitecture.Any(parse.WasGiven));
            if (classifier.Config.ImageSize != modelConfig.ImageSize)
                throw new ConfigurationException("image_size",
                    $"the classifier '{classifierFile}' takes {classifier.Config.ImageSize}-pixel images but the diffusion model samples {modelConfig.ImageSize}.");

            if (classifier.Diffusion.DiffusionSteps != diffusionConfig.DiffusionSteps || classifier.Diffusion.NoiseSchedule != diffusionConfig.NoiseSchedule)
                throw new ConfigurationException("classifier_path",
                    $"the classifier '{classifierFile}' was trained on a {classifier.Diffusion.DiffusionSteps}-step {classifier.Diffusion.NoiseSchedule} process "
                    + $"but the diffusion model samples a {diffusionConfig.DiffusionSteps}-step {diffusionConfig.NoiseSchedule} one: its timesteps would mean other noise levels. "
                    + "Train the classifier with the model's --diffusion_steps and --noise_schedule.");
            if (classifier.Diffusion.TimestepRespacing.Length > 0)
                Console.Error.WriteLine($"warning: the classifier was trained with --timestep_respacing '{classifier.Diffusion.TimestepRespacing}', "
                    + "so it saw spaced step indices; while sampling it receives steps of the original process (0..diffusion_steps-1), as in the original.");
            int numClasses = classifier.Config.NumClasses;
            if (unet.IsClassConditional) numClasses = Math.Min(numClasses, modelConfig.NumClasses);
            int fixedClass = parse.GetValue(classId);
            if (fixedClass >= numClasses)
                throw new ConfigurationException("class_id", $"must be -1 or a class below {numClasses}, got {fixedClass}.");

            var guided = new GuidedSampler(unet, sampler, new ClassifierGuidance(classifier.Model, parse.GetValue(classifierScale)));
            var generator = new Generator((ulong)parse.GetValue(seed));
            var noise = Noise.From(generator);
            int size = modelConfig.ImageSize;
            int imageBytes = size * size * 3;
            const int gridImages = 64;
            var gridPixels = new byte[Math.Min(samples, gridImages) * imageBytes];
            var labels = new long[samples];
            int batches = (samples + batch - 1) / batch;
            bool interactive = !Console.IsErrorRedirected;
            var folder = parse.GetValue(outDir) ?? "samples";
            Directory.CreateDirectory(folder);
            string shape = $"{samples}x{size}x{size}x3";
            string npz = Path.Combine(folder, $"samples_{shape}.npz");
            string png = Path.Combine(folder, $"samples_{shape}.png");
            // Images go to a raw file as they are made: 10000 samples at 512² exceed a .NET array.
            string raw = Path.Combine(folder, $".samples_{shape}.{Guid.NewGuid():N}.u8");
            var clock = Stopwatch.StartNew();
            try
            {
                using (var rawFile = new FileStream(raw, FileMode.CreateNew, FileAccess.Write))
                {
                    for (int b = 0, done = 0; done < samples; b++)
                    {
                        using var scope = NewDisposeScope();
                        int count = Math.Min(batch, samples - done);
                        var classes = fixedClass >= 0
                            ? full(new long[] { count }, fixedClass, dtype: ScalarType.Int64)
                            : randint(numClasses, new long[] { count }, dtype: ScalarType.Int64, generator: generator);
                        int batchIndex = b;
                        var images = guided.SampleBatch(classes, parse.GetValue(useDdim), noise, parse.GetValue(clipDenoised), progress: (step, total) =>
                        {
                            if (interactive) Console.Error.Write($"\rbatch {batchIndex + 1}/{batches}  step {step}/{total}  {clock.Elapsed:hh\\:mm\\:ss}");
                        });
                        var bytes = images.data<byte>().ToArray();
                        rawFile.Write(bytes);
                        for (int i = 0; i < count && done + i < gridImages; i++)
                            Array.Copy(bytes, i * imageBytes, gridPixels, (done + i) * imageBytes, imageBytes);
                        classes.data<long>().CopyTo(labels, done);
                        done += count;
                        if (interactive) Console.Error.WriteLine();
                        Console.WriteLine($"created {done}/{samples} samples ({clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s)");
                    }
                }
                NpzWriter.Write(npz, NpzWriter.UInt8File(raw, samples, size, size, 3), NpzWriter.Int64(labels, samples));
            }
            finally
            {
                File.Delete(raw);
            }
            ImageGrid.WritePng(png, gridPixels, Math.Min(samples, gridImages), size, size);
            Console.WriteLine($"saved {npz} and {png}");
            return 0;
        }));
        return command;
    }
}
