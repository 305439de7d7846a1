using System.CommandLine;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Cli.Commands;

/// <summary><c>guided-diffusion image-train</c>: the original's image_train.py flags (diffusion-model training), plus ours.</summary>
internal static class ImageTrainCommand
{
    private static readonly TrainingConfig T = TrainingConfig.ImageTrainDefaults;

    public static Command Create()
    {
        var model = new DiffusionModelFlags();
        var dataDir = Flags.Create("data_dir", T.DataDir, "Training image folder (empty: the bundled Fashion-MNIST demo with a tiny UNet).");
        var scheduleSampler = Flags.Create("schedule_sampler", T.ScheduleSampler, "Timestep sampler: uniform or loss-second-moment.");
        var lr = Flags.Create("lr", T.Lr, "AdamW learning rate.");
        var weightDecay = Flags.Create("weight_decay", T.WeightDecay, "AdamW weight decay.");
        var lrAnnealSteps = Flags.Create("lr_anneal_steps", 0, "Anneal lr linearly to 0 over this many updates and stop there (0: constant lr, train until stopped).");
        var batchSize = Flags.Create("batch_size", T.BatchSize, "Images per step and per process.");
        var microbatch = Flags.Create("microbatch", T.Microbatch, "Split batches into chunks of this size (-1: no split); gradients are unchanged.");
        var emaRate = Flags.Create("ema_rate", T.EmaRate, "EMA decay rates, comma separated; each writes ema_RATE_NNNNNN.pt.");
        var logInterval = Flags.Create("log_interval", T.LogInterval, "Steps between metric dumps.");
        var saveInterval = Flags.Create("save_interval", T.SaveInterval, "Steps between checkpoints.");
        var resume = Flags.Create("resume_checkpoint", T.ResumeCheckpoint, "modelNNNNNN.pt to resume from, or 'auto' for the newest in --log_dir.");
        var scaleGrowth = Flags.Create("fp16_scale_growth", T.Fp16ScaleGrowth, "fp16: lg_loss_scale increase per step without overflow.");
        var iterations = Flags.Create("iterations", 0, "Stop after this many updates without annealing (ours; 0: --lr_anneal_steps, or until stopped).");
        var logDir = Flags.Create("log_dir", T.LogDir, "Run folder (default: $OPENAI_LOGDIR, else runs/<timestamp>).");
        var overwrite = Flags.Create("overwrite", T.Overwrite, "Start afresh in a non-empty --log_dir, moving its files into replaced-<time>/ there (default: refuse).");
        var maxPixels = Flags.Create("max_image_pixels", ImageDecoder.DefaultMaxImagePixels, "Decompression-bomb limit (PIL's MAX_IMAGE_PIXELS): warn above it, refuse an image above twice it.");
        var seed = Flags.Create("seed", T.Seed, "Seed for weights, data order, timesteps and noise.");
        var labelFrom = Flags.Create("label_from", T.LabelFrom, "Class of an image for --class_cond: prefix (file name before '_', the original) or folder.");
        var numWorkers = Flags.Create("num_workers", T.NumWorkers, "Image decoding threads (0: on the training thread).");
        var precision = Flags.Create("precision", T.Precision, "fp32, fp16 (GPU; loss scaling; also --use_fp16 True), bf16 or auto (bf16 where native).");
        var allowSlowBf16 = Flags.Create("allow_slow_bf16", T.AllowSlowBf16, "Train in bf16 even on a CPU without AVX512-BF16/AMX (10–200× slower; refused otherwise).");
        var gradClip = Flags.Create("grad_clip", T.GradClip, "Clip the global gradient norm (0: off).");
        var randomFlip = Flags.Create("random_flip", T.RandomFlip, "Random horizontal flips of training images.");
        var allowMismatch = Flags.Create("allow_config_mismatch", T.AllowConfigMismatch, "Resume even if the checkpoint's recorded architecture differs.");
        var device = Flags.Create("device", "cpu", "cpu or cuda (cuda needs the CUDA build: see README).");
        var distributed = Flags.Create("distributed", "auto", "Data parallelism: auto (MPI when launched by mpiexec/mpirun), none, or mpi.");

        var command = new Command("image-train", "Train a diffusion model (the ADM UNet) on images (the original's scripts/image_train.py).");
        foreach (var option in new Option[] { dataDir, scheduleSampler, lr, weightDecay, lrAnnealSteps, batchSize, microbatch, emaRate,
                     logInterval, saveInterval, resume, scaleGrowth, iterations, logDir, overwrite, maxPixels, seed, labelFrom, numWorkers, precision, allowSlowBf16, gradClip,
                     randomFlip, allowMismatch, device, distributed })
            command.Options.Add(option);
        model.AddTo(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            int annealSteps = parse.GetValue(lrAnnealSteps), maxSteps = parse.GetValue(iterations);
            if (annealSteps < 0) throw new ConfigurationException("lr_anneal_steps", $"must be ≥ 0 (0: no annealing), got {annealSteps}.");
            if (maxSteps < 0) throw new ConfigurationException("iterations", $"must be ≥ 0 (0: no limit of its own), got {maxSteps}.");
            if (annealSteps > 0 && maxSteps > 0)
                throw new ConfigurationException("iterations", "give either --lr_anneal_steps (anneal and stop there) or --iterations (constant lr), not both.");
            var training = T with
            {
                DataDir = parse.GetValue(dataDir) ?? "",
                ScheduleSampler = parse.GetValue(scheduleSampler) ?? "",
                Lr = parse.GetValue(lr),
                WeightDecay = parse.GetValue(weightDecay),
                AnnealLr = annealSteps > 0,
                Iterations = annealSteps > 0 ? annealSteps : maxSteps > 0 ? maxSteps : int.MaxValue,
                BatchSize = parse.GetValue(batchSize),
                Microbatch = parse.GetValue(microbatch),
                EmaRate = parse.GetValue(emaRate) ?? "",
                LogInterval = parse.GetValue(logInterval),
                SaveInterval = parse.GetValue(saveInterval),
                ResumeCheckpoint = parse.GetValue(resume) ?? "",
                Fp16ScaleGrowth = parse.GetValue(scaleGrowth),
                LogDir = parse.GetValue(logDir) ?? "",
                Overwrite = parse.GetValue(overwrite),
                Seed = parse.GetValue(seed),
                LabelFrom = parse.GetValue(labelFrom) ?? "",
                NumWorkers = parse.GetValue(numWorkers),
                Precision = parse.GetValue(precision) ?? "",
                AllowSlowBf16 = parse.GetValue(allowSlowBf16),
                GradClip = parse.GetValue(gradClip),
                RandomFlip = parse.GetValue(randomFlip),
                AllowConfigMismatch = parse.GetValue(allowMismatch),
            };
            var unet = model.Model(parse);
            var diffusion = model.Diffusion(parse);
            var trainOn = ComputeDevice.Parse(parse.GetValue(device) ?? "cpu");
            ImageDecoder.MaxImagePixels = parse.GetValue(maxPixels) is > 0 and var limit ? limit
                : throw new ConfigurationException("max_image_pixels", $"must be a positive pixel count, got {parse.GetValue(maxPixels)}.");

            if (string.IsNullOrWhiteSpace(training.DataDir))
            {
                // The demo: only flags the user did not type take the demo's values.
                (training, unet, diffusion) = DemoPreset.ApplyDiffusion(training, unet, diffusion,
                    given: name => parse.WasGiven(command, name));
                Console.WriteLine($"No --data_dir given: training on the bundled Fashion-MNIST sample ({DemoPreset.DescribeDiffusion(training, unet, diffusion)}).");
            }

            bool bounded = training.Iterations < int.MaxValue;
            return TrainingRunner.Run(parse.GetValue(distributed) ?? "auto", (comm, progress, stop) =>
            {
                var job = new ImageTrainingJob(training, unet, diffusion, comm.IsMain ? progress.Writer : null, comm, trainOn)
                {
                    OnStep = bounded ? progress.Report : null,
                };
                if (!bounded && comm.IsMain) Console.WriteLine("No --lr_anneal_steps or --iterations: training until stopped (Ctrl-C saves a checkpoint).");
                return job.Run(stop);
            });
        }));
        return command;
    }
}
