using static TorchSharp.torch;

namespace GuidedDiffusion.Diffusion;

/// <summary>The training objective (the original's <c>LossType</c>).</summary>
public enum LossType
{
    /// <summary>MSE on the model's mean prediction (plus the VLB term for learned variances).</summary>
    Mse,

    /// <summary>MSE, with the learned-variance VLB term multiplied by T/1000 (<c>rescale_learned_sigmas</c>).</summary>
    RescaledMse,

    /// <summary>The variational bound alone (in bits per dimension).</summary>
    Kl,

    /// <summary>The variational bound multiplied by T, an estimate of the full bound (<c>use_kl</c>).</summary>
    RescaledKl,
}

/// <summary>Per-sample loss terms [B] of one training batch; <see cref="Mse"/> and <see cref="Vb"/> are null when the loss has no such term.</summary>
/// <param name="Loss">The loss to minimise (before importance weighting).</param>
/// <param name="Mse">Mean squared error of the mean prediction (MSE losses).</param>
/// <param name="Vb">The variational-bound term (KL at t &gt; 0, decoder NLL at t = 0), in bits per dimension (learned sigmas).</param>
public sealed record LossTerms(Tensor Loss, Tensor? Mse, Tensor? Vb) : IDisposable
{
    /// <summary>The terms with the original's keys, in the order its dict holds them: vb, mse, loss.</summary>
    public IEnumerable<(string Key, Tensor Value)> Named()
    {
        if (Vb is not null) yield return ("vb", Vb);
        if (Mse is not null) yield return ("mse", Mse);
        yield return ("loss", Loss);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Loss.Dispose();
        Mse?.Dispose();
        Vb?.Dispose();
    }
}

/// <summary>
/// The original's <c>GaussianDiffusion.training_losses</c> and <c>_vb_terms_bpd</c> over a
/// <see cref="ReverseProcess"/> (whose <c>p_mean_variance</c> and tables they share).
/// </summary>
public sealed class DiffusionLoss
{
    private readonly VariationalBound _bound;

    /// <summary>Creates the loss.</summary>
    /// <param name="sampler">The process, variance and mean types of the model being trained.</param>
    /// <param name="lossType">The objective.</param>
    public DiffusionLoss(ReverseProcess sampler, LossType lossType)
    {
        Process = sampler;
        LossType = lossType;
        _bound = new VariationalBound(sampler);
    }

    /// <summary>
    /// The loss the original's <c>create_gaussian_diffusion</c> picks: use_kl → rescaled KL, else
    /// rescale_learned_sigmas → rescaled MSE, else MSE.
    /// </summary>
    public static DiffusionLoss For(DiffusionConfig config) => new(ReverseProcess.For(config), TypeFor(config));

    /// <summary>The loss type for the diffusion flags (see <see cref="For"/>).</summary>
    public static LossType TypeFor(DiffusionConfig config) =>
        config.UseKl ? LossType.RescaledKl : config.RescaleLearnedSigmas ? LossType.RescaledMse : LossType.Mse;

    /// <summary>The process and model parameterisation.</summary>
    public ReverseProcess Process { get; }

    /// <summary>The objective.</summary>
    public LossType LossType { get; }

    /// <summary>
    /// The keys <see cref="TrainingLosses"/> returns, in the original's insertion order: vb (learned variances), mse,
    /// loss for the MSE losses; loss alone for the KL losses.
    /// </summary>
    public IReadOnlyList<string> TermNames =>
        LossType is LossType.Kl or LossType.RescaledKl ? new[] { "loss" }
        : Process.ModelLearnsVariance ? new[] { "vb", "mse", "loss" } : new[] { "mse", "loss" };

    /// <summary>
    /// Per-sample losses for one batch: x_t = q_sample(x0, t, noise), the model run at the mapped t, then the
    /// MSE against ε (or x0 with predict_xstart) and, for learned variances, the VLB term computed with the mean
    /// output detached so that it trains only the variance; or the bound alone for KL losses.
    /// </summary>
    /// <param name="model">The denoiser; it receives the model timesteps (mapped / rescaled t).</param>
    /// <param name="x0">Clean images [B, C, H, W] in [−1, 1].</param>
    /// <param name="t">Spaced step indices [B] (int64).</param>
    /// <param name="y">Labels for a class-conditional model, or null.</param>
    /// <param name="noise">ε shaped like <paramref name="x0"/>.</param>
    public LossTerms TrainingLosses(DenoiserFn model, Tensor x0, Tensor t, Tensor? y, Tensor noise)
    {
        using var scope = NewDisposeScope();
        var diffusion = Process.Diffusion;
        var xt = diffusion.QSample(x0, t, noise);
        if (LossType is LossType.Kl or LossType.RescaledKl)
        {
            var bound = VbTermsBpd(Process.PMeanVariance(model, xt, t, y, clipDenoised: false), x0, xt, t);
            if (LossType == LossType.RescaledKl) bound = bound * diffusion.NumTimesteps;
            return Keep(new LossTerms(bound, null, null));
        }

        var output = model(xt, diffusion.ModelTimesteps(t), y);
        Tensor? vb = null;
        var meanOutput = output;
        if (Process.ModelLearnsVariance)
        {
            long channels = x0.shape[1];
            var parts = output.split(channels, dim: 1);
            meanOutput = parts[0];
            // The bound must not move the mean: it sees the mean prediction detached and trains the variance only.
            var frozen = cat(new[] { parts[0].detach(), parts[1] }, dim: 1);
            vb = VbTermsBpd(Process.PMeanVarianceFromOutput(frozen, xt, t, clipDenoised: false), x0, xt, t);
            // The original divides by 1000 "for equivalence with the initial implementation".
            if (LossType == LossType.RescaledMse) vb = vb * (diffusion.NumTimesteps / 1000.0);
        }
        var target = Process.MeanType == ModelMeanType.StartX ? x0 : noise;
        if (!target.shape.SequenceEqual(meanOutput.shape))
            throw new ArgumentException($"the model's mean output is [{string.Join(", ", meanOutput.shape)}], the target [{string.Join(", ", target.shape)}].");
        var mse = GaussianLosses.MeanFlat((target - meanOutput).square());
        var loss = vb is null ? mse.alias() : mse + vb;
        return Keep(new LossTerms(loss, mse, vb));
    }

    /// <summary>
    /// The original's <c>_vb_terms_bpd</c> for a given p(x_{t−1} | x_t): KL(q(x_{t−1} | x_t, x0) ‖ p) in bits per
    /// dimension for t &gt; 0, and the discretized decoder NLL in bits per dimension for t = 0; [B]. See
    /// <see cref="VariationalBound.TermsBpd(PMeanVarianceResult, Tensor, Tensor, Tensor)"/> for both branches.
    /// </summary>
    /// <param name="p">The model's mean and log variance at (x_t, t).</param>
    /// <param name="x0">Clean images.</param>
    /// <param name="xt">Noised images.</param>
    /// <param name="t">Spaced step indices [B].</param>
    public Tensor VbTermsBpd(PMeanVarianceResult p, Tensor x0, Tensor xt, Tensor t)
    {
        using var scope = NewDisposeScope();
        return _bound.TermsBpd(p, x0, xt, t).Output.MoveToOuterDisposeScope();
    }

    private static LossTerms Keep(LossTerms terms) => new(
        terms.Loss.MoveToOuterDisposeScope(), terms.Mse?.MoveToOuterDisposeScope(), terms.Vb?.MoveToOuterDisposeScope());
}
