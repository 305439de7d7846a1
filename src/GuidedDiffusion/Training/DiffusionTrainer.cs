using GuidedDiffusion.Diffusion;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// One optimizer update of the original's image_train.py (TrainLoop.run_step): draw t with importance weights,
/// compute <see cref="DiffusionLoss.TrainingLosses"/> per microbatch, back-propagate the weighted mean scaled by
/// microbatch/batch, then step through the shared <see cref="TrainerBase"/> machinery. Logs loss, mse and vb
/// (each × the importance weights, as the original's log_loss_dict) with their quartiles.
/// </summary>
public sealed class DiffusionTrainer : TrainerBase
{
    private readonly nn.Module<Tensor, Tensor, Tensor?, Tensor> _model;
    private readonly DiffusionLoss _loss;
    private readonly bool _classConditional;

    /// <summary>Sets up the trainer over an already built (and converted) diffusion model.</summary>
    /// <param name="model">The UNet, forward(x_t, model timesteps, y) → ε (or x0) [and variance values].</param>
    /// <param name="loss">The objective and the (spaced) process.</param>
    /// <param name="config">Loop flags.</param>
    /// <param name="classConditional">Pass the batch's labels to the model as y.</param>
    /// <param name="rank">This process's rank (seeds differ per rank).</param>
    /// <param name="worldSize">Number of data-parallel processes (for <c>samples</c>).</param>
    /// <param name="reduceGradients">Averages the model's gradients across ranks after backward; null in a single process.</param>
    /// <param name="device">Where the model's parameters are and every tensor of a step is created (null: the CPU).</param>
    public DiffusionTrainer(nn.Module<Tensor, Tensor, Tensor?, Tensor> model, DiffusionLoss loss, TrainingConfig config,
        bool classConditional, int rank = 0, int worldSize = 1, Action<IReadOnlyList<Parameter>>? reduceGradients = null, Device? device = null)
        : base(model, config, loss.Process.Diffusion.NumTimesteps, rank, worldSize, reduceGradients, device)
    {
        _model = model;
        _loss = loss;
        _classConditional = classConditional;
    }

    /// <inheritdoc />
    public override string ProgressMetric => "loss";

    /// <summary>The loss being minimised.</summary>
    public DiffusionLoss Loss => _loss;

    /// <inheritdoc />
    public override void ForwardBackward(Tensor images, Tensor labels)
    {
        using var scope = NewDisposeScope();
        int batch = (int)images.shape[0], micro = Math.Min(Config.EffectiveMicrobatch, batch);
        LogStep(batch);
        _model.train();
        Precision.ZeroModelGrads();
        long seed = StepSeeds.For(Config.Seed, CompletedSteps, Rank, StepSeeds.Purpose.Train);
        var (ts, weights) = SeedAndSampleTimesteps(batch, seed);
        var x0 = images.to_type(ScalarType.Float32);
        // ε for the whole batch at once, so splitting into microbatches does not change the draws.
        var noise = StepNoise(x0, seed);
        var t = OnDevice(ts);
        var w = OnDevice(weights);
        var losses = new List<double>(batch);
        for (int start = 0; start < batch; start += micro)
        {
            int n = Math.Min(micro, batch - start);
            using var microScope = NewDisposeScope();
            var y = _classConditional ? labels.narrow(0, start, n).to_type(ScalarType.Int64) : null;
            var subW = w.narrow(0, start, n);
            using var terms = _loss.TrainingLosses((x, modelT, label) => _model.forward(x, modelT, label),
                x0.narrow(0, start, n), t.narrow(0, start, n), y, noise.narrow(0, start, n));
            var subT = new ArraySegment<long>(ts, start, n);
            foreach (var (key, value) in terms.Named())
                LogWithQuartiles(key, ComputeDevice.ToArray<float>(value.detach().to_type(ScalarType.Float32) * subW), subT);
            losses.AddRange(ComputeDevice.ToArray<double>(terms.Loss.detach().to_type(ScalarType.Float64)));
            ((terms.Loss * subW).mean() * ((double)n / batch * Precision.LossScale)).backward();
        }
        if (Sampler.UsesLosses) Sampler.UpdateWithLosses(ts, losses);
    }
}
