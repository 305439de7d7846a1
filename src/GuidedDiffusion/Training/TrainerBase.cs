using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// What every trainer shares, whatever its loss: the precision policy with float32 masters, AdamW, the
/// learning-rate schedule, EMAs, the timestep sampler, the metrics, gradient averaging across ranks and the
/// optimizer half of a step (unscale, skip on overflow, clip, step, EMA update). A subclass supplies the
/// gradient half, <see cref="ForwardBackward"/>.
/// </summary>
public abstract class TrainerBase : IDisposable
{
    private readonly nn.Module _model;
    private readonly LearningRateSchedule _lr;
    private readonly Action<IReadOnlyList<Parameter>>? _reduceGradients;

    /// <summary>Sets up the precision policy, AdamW, sampler and EMAs over an already built (and converted) model.</summary>
    /// <param name="model">The model; its trunk already in the policy's dtype.</param>
    /// <param name="config">Loop flags (validated here).</param>
    /// <param name="numTimesteps">Steps of the (spaced) process t is drawn from.</param>
    /// <param name="rank">This process's rank (seeds differ per rank).</param>
    /// <param name="worldSize">Number of data-parallel processes (for <c>samples</c>).</param>
    /// <param name="reduceGradients">Averages the model's gradients across ranks after backward; null in a single process.</param>
    /// <param name="device">Where the model's parameters are and every tensor of a step is created (null: the CPU).</param>
    /// <exception cref="ArgumentException">A parameter of the model is on another device.</exception>
    protected TrainerBase(nn.Module model, TrainingConfig config, int numTimesteps, int rank, int worldSize,
        Action<IReadOnlyList<Parameter>>? reduceGradients, Device? device = null)
    {
        config.Validate();
        Device = device ?? CPU;
        foreach (var (name, parameter) in model.named_parameters())
            if (!ComputeDevice.IsOn(parameter, Device))
                throw new ArgumentException($"parameter '{name}' is on {parameter.device}, not on the training device {Device}: move the model there first.", nameof(model));
        _model = model;
        Config = config;
        NumTimesteps = numTimesteps;
        _lr = new LearningRateSchedule(config.Optimizer.Lr, config.Length.AnnealLr, config.Length.Iterations);
        _reduceGradients = reduceGradients;
        Rank = rank;
        WorldSize = worldSize;
        NamedParameters = model.named_parameters().ToArray();
        Precision = PrecisionPolicy.Create(config.Precision.Mode, NamedParameters.Select(p => p.parameter).ToArray(), config.Precision.InitialLgLossScale, config.Precision.Fp16ScaleGrowth);
        Optimizer = optim.AdamW(Precision.MasterParameters, config.Optimizer.Lr, 0.9, 0.999, 1e-8, config.Optimizer.WeightDecay);
        Sampler = TimestepSampler.Create(config.ScheduleSampler, numTimesteps);
        Emas = config.Optimizer.EmaRates.Select(r => new ExponentialMovingAverage(r, Precision.MasterParameters)).ToArray();
    }

    /// <summary>The loop flags.</summary>
    protected TrainingConfig Config { get; }

    /// <summary>Where the model lives and every tensor of a step is created.</summary>
    public Device Device { get; }

    /// <summary>Steps of the process t is drawn from (for the quartile keys).</summary>
    public int NumTimesteps { get; }

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
    public TimestepSampler Sampler { get; }

    /// <summary>One moving average per <c>--ema_rate</c>.</summary>
    public IReadOnlyList<ExponentialMovingAverage> Emas { get; }

    /// <summary>Metrics since the last dump (logkv / logkv_mean semantics).</summary>
    public MetricAccumulator Metrics { get; } = new();

    /// <summary>The metric whose latest mean the progress bar shows (e.g. <c>train_loss</c>).</summary>
    public abstract string ProgressMetric { get; }

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
    /// The gradient half of a step: log <c>step</c> / <c>samples</c>, zero the gradients and accumulate the
    /// (loss-scaled) gradients of every microbatch on the model's parameters.
    /// </summary>
    public abstract void ForwardBackward(Tensor images, Tensor labels);

    /// <summary>Logs <c>step</c> and <c>samples</c> = (step + 1)·batch·world size, as the original does.</summary>
    protected void LogStep(int batchSize)
    {
        Metrics.Set("step", CompletedSteps);
        Metrics.Set("samples", (CompletedSteps + 1) * (long)batchSize * WorldSize);
    }

    /// <summary>Adds the mean of <paramref name="values"/> to <paramref name="key"/> and each value to its <c>{key}_q{quartile}</c>.</summary>
    /// <param name="key">The metric key.</param>
    /// <param name="values">Per-sample values.</param>
    /// <param name="t">The samples' spaced steps, aligned with <paramref name="values"/>.</param>
    protected void LogWithQuartiles(string key, IReadOnlyList<float> values, IReadOnlyList<long> t)
    {
        Metrics.AddToMean(key, values.Average());
        for (int i = 0; i < values.Count; i++)
            Metrics.AddToMean($"{key}_q{MetricKeys.Quartile(t[i], NumTimesteps)}", values[i]);
    }

    /// <summary>Seeds torch and draws t (with importance weights) for this step's batch.</summary>
    /// <param name="batchSize">Samples in the batch.</param>
    /// <param name="seed">The step's seed (<see cref="StepSeeds"/>).</param>
    protected (long[] T, float[] Weights) SeedAndSampleTimesteps(int batchSize, long seed)
    {
        // One seed per step drives t, ε and dropout, so a resumed run draws exactly what an uninterrupted one would.
        random.manual_seed(seed);
        return Sampler.Sample(batchSize, new Random((int)(seed & 0x7FFFFFFF)));
    }

    /// <summary>
    /// Standard normal noise shaped like <paramref name="like"/>, from a generator of its own seeded with the
    /// step's seed: other code drawing from torch's global generator in between cannot change it. The generator
    /// and the noise are on <see cref="Device"/> (a CUDA generator's stream differs from the CPU's).
    /// </summary>
    protected Tensor StepNoise(Tensor like, long seed)
    {
        using var generator = new Generator((ulong)seed, Device);
        return randn(like.shape, dtype: like.dtype, device: Device, generator: generator);
    }

    /// <summary>Host values (timesteps, importance weights) as a tensor on <see cref="Device"/>.</summary>
    protected Tensor OnDevice(long[] values) => tensor(values, device: Device);

    /// <inheritdoc cref="OnDevice(long[])"/>
    protected Tensor OnDevice(float[] values) => tensor(values, device: Device);

    private bool Optimize()
    {
        if (Precision.LgLossScale is { } lg) Metrics.AddToMean("lg_loss_scale", lg);
        var norms = Precision.PrepareStep();
        if (norms is null)
        {
            Message?.Invoke($"Found NaN, decreased lg_loss_scale to {Precision.LgLossScale}");
            // Scaling down cures an overflow, not a NaN: once the scale is below 1 (16 halvings from the initial
            // 2^16) the gradients are non-finite at any scale, and skipping on would skip every remaining step.
            if (Precision.LgLossScale < 0)
                throw new NonFiniteTrainingException(CompletedSteps, double.NaN, ProgressMetric,
                    Metrics.Snapshot().GetValueOrDefault(ProgressMetric, double.NaN));
            return false;
        }
        if (!double.IsFinite(norms.Value.GradNorm))
            throw new NonFiniteTrainingException(CompletedSteps, norms.Value.GradNorm, ProgressMetric,
                Metrics.Snapshot().GetValueOrDefault(ProgressMetric, double.NaN));
        Metrics.AddToMean("grad_norm", norms.Value.GradNorm);
        Metrics.AddToMean("param_norm", norms.Value.ParamNorm);
        if (Config.Optimizer.GradClip > 0)
            nn.utils.clip_grad_norm_(Precision.MasterParameters, Config.Optimizer.GradClip);
        AdamWUpdate.Step(Optimizer);
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
        StateDictIO.Load(_model, stateDict, sourceName);
        using var noGrad = no_grad();
        for (int i = 0; i < NamedParameters.Length; i++)
            Precision.MasterParameters[i].copy_(stateDict[NamedParameters[i].name]);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the EMAs, the optimizer and the masters.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (!disposing) return;
        foreach (var ema in Emas) ema.Dispose();
        Optimizer.Dispose();
        Precision.Dispose();
    }
}
