using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Adversarial;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// One optimizer update of the original's classifier_train.py: draw t, noise the batch with q_sample, run
/// the classifier on microbatches, accumulate cross-entropy gradients scaled by microbatch/batch, then step
/// AdamW through the precision policy; metrics go to <see cref="TrainerBase.Metrics"/> with the original's keys.
/// With <see cref="ClassifierObjective.Adversarial"/> set, each microbatch is first attacked (<see cref="L2PgdAttack"/>, in
/// the same train/eval mode as the pass) and the update and train metrics use the attacked x_t.
/// </summary>
public sealed class ClassifierTrainer : TrainerBase
{
    private readonly nn.Module<Tensor, Tensor, Tensor> _model;
    private readonly GaussianDiffusion _diffusion;
    private readonly string[] _metricNames;
    private readonly L2PgdAttack? _attack;

    /// <summary>Sets up the precision policy, AdamW and EMA over an already built (and converted) model.</summary>
    /// <param name="model">The classifier, forward(x, t) → logits; its trunk already in the policy's dtype.</param>
    /// <param name="diffusion">The (spaced) process that noises the batches.</param>
    /// <param name="config">Loop flags.</param>
    /// <param name="numClasses">Logits per sample (acc@5 is logged only when ≥ 5).</param>
    /// <param name="rank">This process's rank (seeds differ per rank).</param>
    /// <param name="worldSize">Number of data-parallel processes (for <c>samples</c>).</param>
    /// <param name="reduceGradients">Averages the model's gradients across ranks after backward; null in a single process.</param>
    /// <param name="device">Where the model's parameters are and every tensor of a step is created (null: the CPU).</param>
    public ClassifierTrainer(nn.Module<Tensor, Tensor, Tensor> model, GaussianDiffusion diffusion, TrainingConfig config,
        int numClasses, int rank = 0, int worldSize = 1, Action<IReadOnlyList<Parameter>>? reduceGradients = null, Device? device = null)
        : base(model, config, diffusion.NumTimesteps, rank, worldSize, reduceGradients, device)
    {
        _model = model;
        _diffusion = diffusion;
        _metricNames = MetricKeys.Metrics(numClasses);
        _attack = config.Objective.Adversarial is { } adversarial ? new L2PgdAttack(model, adversarial, diffusion) : null;
    }

    /// <inheritdoc />
    public override string ProgressMetric => "train_loss";

    /// <summary>
    /// The gradient half of a step: zero the gradients, noise the batch with this step's seed and
    /// accumulate the (loss-scaled) gradients of every microbatch on the model's parameters.
    /// </summary>
    public override void ForwardBackward(Tensor images, Tensor labels)
    {
        using var scope = NewDisposeScope();
        LogStep((int)images.shape[0]);
        _model.train();
        Precision.ZeroModelGrads();
        var (xt, t, ts) = Noise(images, StepSeeds.For(Config.Seed, CompletedSteps, Rank, StepSeeds.Purpose.Train));
        ForwardLog(xt, labels, t, ts, "train", backward: true, attack: _attack is not null);
    }

    /// <summary>
    /// Logs <c>val_</c> metrics for one batch without gradients, in eval mode; when training adversarially, also the
    /// same noised batch under attack as <c>val_robust_</c> (<see cref="AdversarialMetrics"/>).
    /// </summary>
    public void Evaluate(Tensor images, Tensor labels)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        _model.eval();
        var (xt, t, ts) = Noise(images, StepSeeds.For(Config.Seed, CompletedSteps, Rank, StepSeeds.Purpose.Validation));
        ForwardLog(xt, labels, t, ts, "val", backward: false, attack: false);
        if (_attack is not null) ForwardLog(xt, labels, t, ts, AdversarialMetrics.RobustValidationPrefix, backward: false, attack: true);
        _model.train();
    }

    /// <summary>x_t, t on the device, and t on the host (for the quartile keys, without reading the device back).</summary>
    private (Tensor Xt, Tensor T, long[] Ts) Noise(Tensor images, long seed)
    {
        int batch = (int)images.shape[0];
        var x0 = images.to_type(ScalarType.Float32);
        if (!Config.Objective.Noised)
        {
            random.manual_seed(seed);
            return (x0, zeros(batch, dtype: ScalarType.Int64, device: Device), new long[batch]);
        }
        var (ts, _) = SeedAndSampleTimesteps(batch, seed);
        var t = OnDevice(ts);
        return (_diffusion.QSample(x0, t, StepNoise(x0, seed)), t, ts);
    }

    private void ForwardLog(Tensor x, Tensor labels, Tensor t, long[] ts, string prefix, bool backward, bool attack)
    {
        int batch = (int)x.shape[0], micro = Math.Min(Config.EffectiveMicrobatch, batch);
        var losses = new List<double>(batch);
        for (int start = 0; start < batch; start += micro)
        {
            int n = Math.Min(micro, batch - start);
            using var scope = NewDisposeScope();
            var subX = x.narrow(0, start, n);
            var subY = labels.narrow(0, start, n).to_type(ScalarType.Int64);
            var subT = t.narrow(0, start, n);
            // The attack's gradients are taken with respect to its input only, so the parameters' .grad hold the update's
            // alone. Its loss is scaled as the update's (fp16 loss scale × microbatch share): an fp16 trunk then overflows
            // in the attack exactly when the update would, and that step is skipped anyway.
            var attacked = attack ? _attack!.Run(subX, subY, subT, Precision.LossScale * n / batch) : null;
            var logits = _model.forward(attacked?.Adversarial ?? subX, subT).to_type(ScalarType.Float32);
            var loss = nn.functional.cross_entropy(logits, subY, reduction: nn.Reduction.None);

            var perSample = new Dictionary<string, float[]>
            {
                ["loss"] = ComputeDevice.ToArray<float>(loss.detach()),
                ["acc@1"] = TopKCorrect(logits, subY, 1),
            };
            if (_metricNames.Contains("acc@5")) perSample["acc@5"] = TopKCorrect(logits, subY, 5);
            foreach (var (metric, values) in perSample)
                LogWithQuartiles($"{prefix}_{metric}", values, new ArraySegment<long>(ts, start, n));
            losses.AddRange(perSample["loss"].Select(v => (double)v));
            if (attacked is not null) AdversarialMetrics.LogPerturbations(Metrics, prefix, attacked, logits, subY);

            if (backward)
                (loss.mean() * ((double)n / batch * Precision.LossScale)).backward();
        }
        if (backward && Sampler.UsesLosses) Sampler.UpdateWithLosses(ts, losses);
    }

    private static float[] TopKCorrect(Tensor logits, Tensor labels, int k)
    {
        using var scope = NewDisposeScope();
        return ComputeDevice.ToArray<float>(TopKAccuracy.Hits(logits, labels, k).to_type(ScalarType.Float32));
    }
}
