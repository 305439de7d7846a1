using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Models;
using GuidedDiffusion.Adversarial;
using static TorchSharp.torch;

namespace GuidedDiffusion.Evaluation;

/// <summary>
/// Evaluates a noise-aware classifier on a whole validation set at several noise levels: for each timestep t
/// every image is noised with q_sample (<see cref="EvaluationOptions.NoiseRepeats"/> independent draws) and
/// classified at t. Reports loss, acc@1, acc@5, calibration, per-class accuracy and the mean norm of the guidance
/// gradient ∇ₓ log p(y | x_t) per level, and with <see cref="EvaluationOptions.Attack"/> the accuracy under an L2 PGD
/// attack (<see cref="L2PgdAttack"/>, in eval mode) next to the clean one. The noise for (t, repeat, batch) depends
/// only on the seed and those three numbers, so results do not depend on the other levels chosen or the device.
/// </summary>
public static class NoiseLevelEvaluator
{
    /// <summary>
    /// Evaluates <paramref name="model"/> (any trunk precision; restored to its previous train/eval mode afterwards)
    /// against <paramref name="diffusion"/> on <paramref name="source"/>, centre-cropped to the model's image size.
    /// The trainer can call this at the end of a run and print <see cref="EvaluationReport.FormatTable"/>.
    /// </summary>
    /// <param name="model">The classifier; its image size and class count are taken from its options.</param>
    /// <param name="diffusion">The (spaced) process the classifier was trained against; t indexes it.</param>
    /// <param name="source">The evaluation images; labels must be below the model's class count.</param>
    /// <param name="options">Levels, repeats, batching and seed.</param>
    /// <param name="progress">Called after each batch with (batches done, batches in total); may be null.</param>
    /// <exception cref="ConfigurationException">An option is out of range.</exception>
    /// <exception cref="DatasetException">The data has more classes than the model has outputs.</exception>
    public static EvaluationReport Run(EncoderUNet model, GaussianDiffusion diffusion, IImageSource source, EvaluationOptions options,
        Action<int, int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        int numClasses = model.Options.OutChannels, imageSize = model.Options.ImageSize;
        if (source.Classes.Count > numClasses)
            throw new DatasetException(
                $"The evaluation data has {source.Classes.Count} classes ({source.Classes.Describe()}) but the classifier has only {numClasses} outputs.");
        var timesteps = options.ResolveTimesteps(diffusion.NumTimesteps);
        var levels = timesteps.Select(t => new LevelAccumulator(t, numClasses)).ToArray();
        var device = model.parameters().First().device;
        int totalBatches = (source.Count + options.BatchSize - 1) / options.BatchSize;
        var attack = options.Attack is { } attackOptions ? new L2PgdAttack(model, attackOptions, diffusion) : null;

        bool wasTraining = model.training;
        model.eval();
        try
        {
            var data = new DataOptions { ImageSize = imageSize, BatchSize = options.BatchSize, NumWorkers = options.NumWorkers };
            int batchIndex = 0;
            foreach (var batch in DataLoader.EnumerateOnce(source, data, device))
            {
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    var x0 = batch.Images;
                    var labels = batch.Labels;
                    for (int level = 0; level < timesteps.Length; level++)
                        for (int repeat = 0; repeat < options.NoiseRepeats; repeat++)
                            EvaluateLevel(model, diffusion, x0, labels, timesteps[level], levels[level],
                                NoiseSeed(options.Seed, timesteps[level], repeat, batchIndex), options, attack);
                }
                batchIndex++;
                progress?.Invoke(batchIndex, totalBatches);
            }
        }
        finally
        {
            model.train(wasTraining);
        }

        return new EvaluationReport
        {
            Data = source is ImageFolderSource folder ? folder.Root : source.GetType().Name,
            Images = source.Count,
            NumTimesteps = diffusion.NumTimesteps,
            NoiseRepeats = options.NoiseRepeats,
            Seed = options.Seed,
            Attack = options.Attack,
            Classes = source.Classes.Count == numClasses
                ? source.Classes.Names
                : source.Classes.Names.Concat(Enumerable.Range(source.Classes.Count, numClasses - source.Classes.Count)
                    .Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))).ToArray(),
            Levels = levels.Select(l => l.Result()).ToArray(),
        };
    }

    /// <summary>
    /// Evaluates a loaded checkpoint against the diffusion it records. Class names in the report are the source's (build
    /// an <see cref="ImageFolderSource"/> with the checkpoint's <see cref="ClassMap"/> so labels number like training);
    /// <see cref="EvaluationReport.ModelPath"/> is left for the caller to fill in.
    /// </summary>
    /// <param name="classifier">The checkpoint.</param>
    /// <param name="source">The evaluation images, labelled with the checkpoint's classes.</param>
    /// <param name="options">Levels, repeats, batching and seed.</param>
    /// <param name="progress">Called after each batch with (batches done, batches in total); may be null.</param>
    public static EvaluationReport Run(TrainedClassifier classifier, IImageSource source, EvaluationOptions options, Action<int, int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        return Run(classifier.Model, classifier.Diffusion.Build(), source, options, progress);
    }

    /// <summary>The seed of the noise for timestep <paramref name="t"/>, draw <paramref name="repeat"/>, batch <paramref name="batch"/>.</summary>
    public static long NoiseSeed(long seed, int t, int repeat, int batch)
    {
        ulong x = SplitMix64.Hash((ulong)seed ^ SplitMix64.Hash((ulong)t + SplitMix64.Golden) ^ SplitMix64.Hash((ulong)repeat + 0xD1B54A32D192ED03UL)
                      ^ SplitMix64.Hash((ulong)batch + 0x8CB92BA72F3D8DD7UL));
        return (long)(x & 0x7FFF_FFFF_FFFF_FFFFUL);
    }

    private static void EvaluateLevel(EncoderUNet model, GaussianDiffusion diffusion, Tensor x0, Tensor labels, int t,
        LevelAccumulator accumulator, long seed, EvaluationOptions options, L2PgdAttack? attack)
    {
        using var scope = NewDisposeScope();
        int count = (int)x0.shape[0];
        // Noise drawn on the CPU from its own generator: the same numbers on every device.
        using var generator = new Generator((ulong)seed);
        var noise = randn(x0.shape, dtype: ScalarType.Float32, device: CPU, generator: generator).to(x0.device);
        var ts = full(count, t, dtype: ScalarType.Int64, device: x0.device);
        var xt = diffusion.QSample(x0, ts, noise);

        int chunk = options.ComputeGradNorm || attack is not null ? Math.Min(options.GradChunkSize, count) : count;
        for (int start = 0; start < count; start += chunk)
        {
            using var inner = NewDisposeScope();
            int n = Math.Min(chunk, count - start);
            var y = labels.narrow(0, start, n);
            var tc = ts.narrow(0, start, n);
            Tensor logProbs;
            float[]? gradNorms = null;
            if (options.ComputeGradNorm)
            {
                // The gradient the sampler's cond_fn would use (before the guidance scale), per sample.
                (logProbs, var grad) = ClassifierGuidance.LogProbsAndGradient(model, xt.narrow(0, start, n), tc, y);
                gradNorms = grad.flatten(1).norm(1).cpu().data<float>().ToArray();
            }
            else
            {
                using var noGrad = no_grad();
                logProbs = model.forward(xt.narrow(0, start, n), tc).to_type(ScalarType.Float32).log_softmax(1);
            }
            Accumulate(accumulator, logProbs, y, gradNorms);
            if (attack is not null) AccumulateRobust(accumulator, model, attack, xt.narrow(0, start, n), y, tc);
        }
    }

    private static void AccumulateRobust(LevelAccumulator accumulator, EncoderUNet model, L2PgdAttack attack, Tensor xt, Tensor labels, Tensor t)
    {
        using var scope = NewDisposeScope();
        var result = attack.Run(xt, labels, t);
        Tensor correct;
        using (no_grad()) correct = model.forward(result.Adversarial, t).argmax(-1).eq(labels);
        var succeeded = result.Succeeded(correct).cpu().data<bool>().ToArray();
        var norms = result.PerturbationNorm.cpu().data<float>().ToArray();
        var stillCorrect = correct.cpu().data<bool>().ToArray();
        for (int i = 0; i < stillCorrect.Length; i++)
            accumulator.AddRobust(stillCorrect[i], succeeded[i] ? norms[i] : null);
    }

    private static void Accumulate(LevelAccumulator accumulator, Tensor logProbs, Tensor labels, float[]? gradNorms)
    {
        int n = (int)logProbs.shape[0], classes = (int)logProbs.shape[1];
        var yCpu = labels.cpu();
        var loss = (-logProbs.gather(1, labels.unsqueeze(1)).squeeze(1)).cpu().data<float>().ToArray();
        var (maxLogProb, predicted) = logProbs.max(1);
        var confidence = maxLogProb.exp().cpu().data<float>().ToArray();
        var pred = predicted.cpu().data<long>().ToArray();
        var inTop5 = TopKAccuracy.Hits(logProbs, labels, Math.Min(5, classes)).cpu().data<bool>().ToArray();
        var y = yCpu.data<long>().ToArray();
        for (int i = 0; i < n; i++)
        {
            accumulator.Add((int)y[i], loss[i], (int)pred[i], confidence[i], inTop5[i]);
            if (gradNorms is not null) accumulator.AddGradNorm(gradNorms[i]);
        }
    }
}
