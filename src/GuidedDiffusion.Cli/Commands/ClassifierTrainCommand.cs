using System.CommandLine;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Cli.Commands;

/// <summary><c>guided-diffusion classifier-train</c>: the original's classifier_train.py flags, plus ours.</summary>
internal static class ClassifierTrainCommand
{
    private static readonly TrainingConfig T = new();

    public static Command Create()
    {
        var model = new ClassifierModelFlags();
        var attack = new AttackFlags(forTraining: true);
        var dataDir = Flags.Create("data_dir", T.DataDir, "Training image folder (empty: the bundled Fashion-MNIST demo with a small config).");
        var valDataDir = Flags.Create("val_data_dir", T.ValDataDir, "Validation image folder, labelled with the training classes.");
        var noised = Flags.Create("noised", T.Noised, "Train on noised x_t (False: clean images at t = 0).");
        var iterations = Flags.Create("iterations", T.Iterations, "Optimizer updates.");
        var lr = Flags.Create("lr", T.Lr, "AdamW learning rate.");
        var weightDecay = Flags.Create("weight_decay", T.WeightDecay, "AdamW weight decay.");
        var annealLr = Flags.Create("anneal_lr", T.AnnealLr, "Decay the learning rate linearly to 0.");
        var batchSize = Flags.Create("batch_size", T.BatchSize, "Images per step and per process.");
        var microbatch = Flags.Create("microbatch", T.Microbatch, "Split batches into chunks of this size (-1: no split); gradients are unchanged.");
        var scheduleSampler = Flags.Create("schedule_sampler", T.ScheduleSampler, "Timestep sampler: uniform or loss-second-moment.");
        var resume = Flags.Create("resume_checkpoint", T.ResumeCheckpoint, "modelNNNNNN.pt to resume from, or 'auto' for the newest in --log_dir.");
        var logInterval = Flags.Create("log_interval", T.LogInterval, "Steps between metric dumps.");
        var evalInterval = Flags.Create("eval_interval", T.EvalInterval, "Steps between validation batches.");
        var saveInterval = Flags.Create("save_interval", T.SaveInterval, "Steps between checkpoints.");
        var logDir = Flags.Create("log_dir", T.LogDir, "Run folder (default: $OPENAI_LOGDIR, else runs/<timestamp>).");
        var overwrite = Flags.Create("overwrite", T.Overwrite, "Start afresh in a non-empty --log_dir, moving its files into replaced-<time>/ there (default: refuse).");
        var maxPixels = Flags.Create("max_image_pixels", ImageDecoder.DefaultMaxImagePixels, "Decompression-bomb limit (PIL's MAX_IMAGE_PIXELS): warn above it, refuse an image above twice it.");
        var seed = Flags.Create("seed", T.Seed, "Seed for weights, data order, timesteps and noise.");
        var labelFrom = Flags.Create("label_from", T.LabelFrom, "Class of an image: prefix (file name before '_', the original) or folder.");
        var numWorkers = Flags.Create("num_workers", T.NumWorkers, "Image decoding threads (0: on the training thread).");
        var precision = Flags.Create("precision", T.Precision, "fp32, fp16 (GPU; loss scaling), bf16 (trunk in bfloat16; needs AVX512-BF16/AMX) or auto (bf16 where native).");
        var allowSlowBf16 = Flags.Create("allow_slow_bf16", T.AllowSlowBf16, "Train in bf16 even on a CPU without AVX512-BF16/AMX (10–200× slower; refused otherwise).");
        var emaRate = Flags.Create("ema_rate", T.EmaRate, "EMA decay rates, comma separated (e.g. 0.9999); empty: none.");
        var gradClip = Flags.Create("grad_clip", T.GradClip, "Clip the global gradient norm (0: off).");
        var skipBad = Flags.Create("skip_bad_images", T.SkipBadImages, "Skip and count unreadable images instead of failing.");
        var flipVal = Flags.Create("flip_validation", T.FlipValidation, "Randomly flip validation images (the original's behaviour).");
        var allowMismatch = Flags.Create("allow_config_mismatch", T.AllowConfigMismatch, "Resume even if the checkpoint's recorded architecture differs.");
        var device = Flags.Create("device", "cpu", "cpu or cuda (cuda needs the CUDA build: see README).");
        var randomCrop = Flags.Create("random_crop", T.RandomCrop, "Random-resized crops of training images (False: centre crop).");
        var randomFlip = Flags.Create("random_flip", T.RandomFlip, "Random horizontal flips of training images.");
        var shuffle = Flags.Create("shuffle", T.Shuffle, "Reshuffle the training files every epoch (False: fixed file order).");
        var evalTable = Flags.Create("eval_table", T.EvalTable, "At the end, print accuracy per noise level on the whole validation set.");
        var checkSync = Flags.Create("check_rank_sync", T.CheckRankSync, "Verify after every step that all ranks hold identical parameters.");
        var distributed = Flags.Create("distributed", "auto", "Data parallelism: auto (MPI when launched by mpiexec/mpirun), none, or mpi.");

        var command = new Command("classifier-train", "Train a noise-aware classifier p(y | x_t, t) (the original's scripts/classifier_train.py).");
        foreach (var option in new Option[] { dataDir, valDataDir, noised, iterations, lr, weightDecay, annealLr, batchSize, microbatch,
                     scheduleSampler, resume, logInterval, evalInterval, saveInterval, logDir, overwrite, maxPixels, seed, labelFrom, numWorkers, precision, allowSlowBf16,
                     emaRate, gradClip, skipBad, flipVal, allowMismatch, device, distributed, randomCrop, randomFlip, shuffle, checkSync, evalTable })
            command.Options.Add(option);
        model.AddTo(command);
        attack.AddTo(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var training = new TrainingConfig
            {
                DataDir = parse.GetValue(dataDir) ?? "",
                ValDataDir = parse.GetValue(valDataDir) ?? "",
                Noised = parse.GetValue(noised),
                Iterations = parse.GetValue(iterations),
                Lr = parse.GetValue(lr),
                WeightDecay = parse.GetValue(weightDecay),
                AnnealLr = parse.GetValue(annealLr),
                BatchSize = parse.GetValue(batchSize),
                Microbatch = parse.GetValue(microbatch),
                ScheduleSampler = parse.GetValue(scheduleSampler) ?? "",
                ResumeCheckpoint = parse.GetValue(resume) ?? "",
                LogInterval = parse.GetValue(logInterval),
                EvalInterval = parse.GetValue(evalInterval),
                SaveInterval = parse.GetValue(saveInterval),
                LogDir = parse.GetValue(logDir) ?? "",
                Overwrite = parse.GetValue(overwrite),
                Seed = parse.GetValue(seed),
                LabelFrom = parse.GetValue(labelFrom) ?? "",
                NumWorkers = parse.GetValue(numWorkers),
                Precision = parse.GetValue(precision) ?? "",
                AllowSlowBf16 = parse.GetValue(allowSlowBf16),
                EmaRate = parse.GetValue(emaRate) ?? "",
                GradClip = parse.GetValue(gradClip),
                SkipBadImages = parse.GetValue(skipBad),
                FlipValidation = parse.GetValue(flipVal),
                AllowConfigMismatch = parse.GetValue(allowMismatch),
                RandomCrop = parse.GetValue(randomCrop),
                RandomFlip = parse.GetValue(randomFlip),
                Shuffle = parse.GetValue(shuffle),
                CheckRankSync = parse.GetValue(checkSync),
                EvalTable = parse.GetValue(evalTable),
                Adversarial = attack.Options(parse),
            };
            var classifier = model.Classifier(parse);
            var diffusion = model.Diffusion(parse);
            var trainOn = ComputeDevice.Parse(parse.GetValue(device) ?? "cpu");
            ImageDecoder.MaxImagePixels = parse.GetValue(maxPixels) is > 0 and var limit ? limit
                : throw new ConfigurationException("max_image_pixels", $"must be a positive pixel count, got {parse.GetValue(maxPixels)}.");

            if (string.IsNullOrWhiteSpace(training.DataDir))
            {
                // The demo: only flags the user did not type take the demo's values.
                (training, classifier) = DemoPreset.Apply(training, classifier, given: name => parse.WasGiven(command, name));
                Console.WriteLine($"No --data_dir given: training on the bundled Fashion-MNIST sample ({DemoPreset.Describe(training, classifier)}).");
            }

            return TrainingRunner.Run(parse.GetValue(distributed) ?? "auto", (comm, progress, stop) =>
                new ClassifierTrainingJob(training, classifier, diffusion, comm.IsMain ? progress.Writer : null, comm, trainOn) { OnStep = progress.Report }
                    .Run(stop));
        }));
        return command;
    }
}
