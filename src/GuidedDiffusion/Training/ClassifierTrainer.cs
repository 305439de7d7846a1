using GuidedDiffusion.Diffusion;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// One optimizer update of the original's classifier_train.py: draw t, noise the batch with q_sample, run
/// the classifier on microbatches, accumulate cross-entropy gradients scaled by microbatch/batch, then step
/// AdamW through the precision policy; metrics go to <see cref="Metrics"/> with the original's keys.
/// </summary>
public sealed class ClassifierTrainer : IDisposable
{
    private readonly nn.Module<Tensor, Tensor, Tensor> _model;
    private readonly GaussianDiffusion _diffusion;
    private readonly TrainingConfig _config;
    private readonly LearningRateSchedule _lr;
    private readonly string[] _metricNames;
    private readonly Action<IReadOnlyList<Parameter>>? _reduceGradients;

    /// <summary>Sets up the precision policy, AdamW and EMA over an already built (and converted) model.</summary>
    /// <param name="model">The classifier, forward(x, t) → logits; its trunk already in the policy's dtype.</param>
    /// <param name="diffusion">The (spaced) process that noises the batches.</param>
    /// <param name="config">Loop flags.</param>
    /// <param name="numClasses">Logits per sample (acc@5 is logged only when ≥ 5).</param>
    /// <param name="rank">This process's rank (seeds differ per rank).</param>
    /// <param name="worldSize">Number of data-parallel processes (for <c>samples</c>).</param>
    /// <param name="reduceGradients">Averages the model's gradients across ranks after backward; null in a single process.</param>
    public ClassifierTrainer(nn.Module<Tensor, Tensor, Tensor> model, GaussianDiffusion diffusion, TrainingConfig config,
        int numClasses, int rank = 0, int worldSize = 1, Action<IReadOnlyList<Parameter>>? reduceGradients = null)
    {
        config.Validate();
        _model = model;
        _diffusion = diffusion;
        _config = config;
        _lr = new LearningRateSchedule(config.Lr, config.AnnealLr, config.Iterations);
        _metricNames = MetricKeys.Metrics(numClasses);
        _reduceGradients = reduceGradients;
        Rank = rank;
        WorldSize = worldSize;
        NamedParameters = model.named_parameters().ToArray();
        Precision = PrecisionPolicy.Create(config.Precision, NamedParameters.Select(p => p.parameter).ToArray());
        Optimizer = optim.AdamW(Precision.MasterParameters, config.Lr, 0.9, 0.999, 1e-8, config.WeightDecay);
        Sampler = ScheduleSampler.Create(config.ScheduleSampler, diffusion.NumTimesteps);
        Emas = config.EmaRates.Select(r => new ExponentialMovingAverage(r, Precision.MasterParameters)).ToArray();
    }

    /// <summary>Updates completed so far (the global index of the next step).</summary>
    public long CompletedSteps { get; set; }

    /// <summary>This process's rank.</summary>
    public int Rank { get; }

    /// <summary>Number of data-parallel processes.</summary>
    public int WorldSize { get; }

    /// <summary>The model's parameters with their state-dict names, in <c>parameters()</c> order.</summary>
    public (string name, Parameter parameter)[] NamedParameters { get; }

    /// <summary>fp32 / fp16 / bf16 handling of parameters, gradients and loss scale.</summary>
    public PrecisionPolicy Precision { get; }

    /// <summary>AdamW over the float32 master parameters (β 0.9/0.999, ε 1e-8).</summary>
    public AdamW Optimizer { get; }

    /// <summary>The timestep sampler.</summary>
    public ScheduleSampler Sampler { get; }

    /// <summary>One moving average per <c>--ema_rate</c>.</summary>
    public IReadOnlyList<ExponentialMovingAverage> Emas { get; }

    /// <summary>Metrics since the last dump (logkv / logkv_mean semantics).</summary>
    public MetricAccumulator Metrics { get; } = new();

    /// <summary>Lines worth logging that a step produced (e.g. a skipped fp16 step).</summary>
    public event Action<string>? Message;

    /// <summary>Runs one update on <paramref name="images"/> / <paramref name="labels"/>; returns whether the optimizer stepped.</summary>
    public bool Step(Tensor images, Tensor labels)
    {
        using var scope = NewDisposeScope();
        foreach (var group in Optimizer.ParamGroups) group.LearningRate = _lr.At(CompletedSteps);
        ForwardBackward(images, labels);
        _reduceGradients?.Invoke(Precision.ModelParameters);
        bool stepped = Optimize();
        CompletedSteps++;
        return stepped;
    }

    /// <summary>
    /// The gradient half of a step: zero the gradients, noise the batch with this step's seed and
    /// accumulate the (loss-scaled) gradients of every microbatch on the model's parameters.
    /// </summary>
    public void ForwardBackward(Tensor images, Tensor labels)
    {
        using var scope = NewDisposeScope();
        long step = CompletedSteps;
        Metrics.Set("step", step);
        Metrics.Set("samples", (step + 1) * (long)images.shape[0] * WorldSize);
        _model.train();
        Precision.ZeroModelGrads();
        var (xt, t) = Noise(images, StepSeeds.For(_config.Seed, step, Rank, StepSeeds.Purpose.Train));
        ForwardLog(xt, labels, t, "train", backward: true);
    }

    /// <summary>Logs <c>val_</c> metrics for one batch without gradients, in eval mode.</summary>
    public void Evaluate(Tensor images, Tensor labels)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        _model.eval();
        var (xt, t) = Noise(images, StepSeeds.For(_config.Seed, CompletedSteps, Rank, StepSeeds.Purpose.Validation));
        ForwardLog(xt, labels, t, "val", backward: false);
        _model.train();
    }

    private (Tensor Xt, Tensor T) Noise(Tensor images, long seed)
    {
        // One seed per step drives t, ε and dropout, so a resumed run draws exactly what an uninterrupted one would.
        random.manual_seed(seed);
        int batch = (int)images.shape[0];
        var x0 = images.to_type(ScalarType.Float32);
        if (!_config.Noised) return (x0, zeros(batch, dtype: ScalarType.Int64));
        var (ts, _) = Sampler.Sample(batch, new Random((int)(seed & 0x7FFFFFFF)));
        var t = tensor(ts);
        return (_diffusion.QSample(x0, t, randn_like(x0)), t);
    }

    private void ForwardLog(Tensor x, Tensor labels, Tensor t, string prefix, bool backward)
    {
        int batch = (int)x.shape[0], micro = Math.Min(_config.EffectiveMicrobatch, batch);
        var losses = new List<double>(batch);
        var ts = t.data<long>().ToArray();
        for (int start = 0; start < batch; start += micro)
        {
            int n = Math.Min(micro, batch - start);
            using var scope = NewDisposeScope();
            var subX = x.narrow(0, start, n);
            var subY = labels.narrow(0, start, n).to_type(ScalarType.Int64);
            var subT = t.narrow(0, start, n);
            var logits = _model.forward(subX, subT).to_type(ScalarType.Float32);
            var loss = nn.functional.cross_entropy(logits, subY, reduction: nn.Reduction.None);

            var perSample = new Dictionary<string, float[]>
            {
                ["loss"] = loss.detach().data<float>().ToArray(),
                ["acc@1"] = TopKCorrect(logits, subY, 1),
            };
            if (_metricNames.Contains("acc@5")) perSample["acc@5"] = TopKCorrect(logits, subY, 5);
            foreach (var (metric, values) in perSample)
            {
                Metrics.AddToMean($"{prefix}_{metric}", values.Average());
                for (int i = 0; i < n; i++)
                    Metrics.AddToMean($"{prefix}_{metric}_q{MetricKeys.Quartile(ts[start + i], _diffusion.NumTimesteps)}", values[i]);
            }
            losses.AddRange(perSample["loss"].Select(v => (double)v));

            if (backward)
                (loss.mean() * ((double)n / batch * Precision.LossScale)).backward();
        }
        if (backward && Sampler.UsesLosses) Sampler.UpdateWithLosses(ts, losses);
    }

    private static float[] TopKCorrect(Tensor logits, Tensor labels, int k)
    {
        using var scope = NewDisposeScope();
        var top = logits.detach().topk(k, dim: -1).indexes;
        return top.eq(labels.unsqueeze(1)).to_type(ScalarType.Float32).sum(dim: -1).data<float>().ToArray();
    }

    private bool Optimize()
    {
        if (Precision.LgLossScale is { } lg) Metrics.AddToMean("lg_loss_scale", lg);
        var norms = Precision.PrepareStep();
        if (norms is null)
        {
            Message?.Invoke($"Found NaN, decreased lg_loss_scale to {Precision.LgLossScale}");
            return false;
        }
        Metrics.AddToMean("grad_norm", norms.Value.GradNorm);
        Metrics.AddToMean("param_norm", norms.Value.ParamNorm);
        if (_config.GradClip > 0)
            nn.utils.clip_grad_norm_(Precision.MasterParameters, _config.GradClip);
        Optimizer.step();
        Precision.CompleteStep();
        foreach (var ema in Emas) ema.Update();
        return true;
    }

    /// <summary>
    /// The state dict to save: the model's entries in order, with every parameter replaced by its float32
    /// master (what the original's master_params_to_state_dict writes).
    /// </summary>
    public List<KeyValuePair<string, Tensor>> MasterStateDict() => StateDictWith(Precision.MasterParameters);

    /// <summary>The state dict with parameter values taken from <paramref name="values"/> (aligned with NamedParameters).</summary>
    public List<KeyValuePair<string, Tensor>> StateDictWith(IReadOnlyList<Tensor> values)
    {
        var byName = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int i = 0; i < NamedParameters.Length; i++) byName[NamedParameters[i].name] = values[i];
        return _model.state_dict()
            .Select(kv => new KeyValuePair<string, Tensor>(kv.Key, byName.TryGetValue(kv.Key, out var v) ? v : kv.Value))
            .ToList();
    }

    /// <summary>
    /// Loads a state dict into the model (every key and shape checked, all mismatches reported at once)
    /// and into the float32 masters (resume / fine-tune).
    /// </summary>
    public void LoadParameters(IReadOnlyDictionary<string, Tensor> stateDict, string sourceName)
    {
        Models.StateDictIO.Load(_model, stateDict, sourceName);
        using var noGrad = no_grad();
        for (int i = 0; i < NamedParameters.Length; i++)
            Precision.MasterParameters[i].copy_(stateDict[NamedParameters[i].name]);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var ema in Emas) ema.Dispose();
        Optimizer.Dispose();
        Precision.Dispose();
    }
}
