using GuidedDiffusion.Adversarial;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// The metrics adversarial training adds, in the original's key style. As in classifier_rob_train.py, <c>train_*</c>
/// are measured on the attacked batch the update uses; the validation batch is classified twice, clean
/// (<c>val_*</c>, as usual) and attacked (<c>val_robust_loss</c>, <c>val_robust_acc@1</c>, … each with its
/// <c>_q0</c>..<c>_q3</c>). <c>{prefix}_attack_l2</c> is the mean ‖δ‖₂ of the perturbations that succeeded (turned a
/// correct prediction wrong), averaged over every such sample since the last dump and across ranks.
/// </summary>
public static class AdversarialMetrics
{
    /// <summary>Prefix of the validation batch's metrics under attack.</summary>
    public const string RobustValidationPrefix = "val_robust";

    /// <summary>The key of the mean L2 size of successful perturbations for a pass logged under <paramref name="prefix"/>.</summary>
    public static string PerturbationKey(string prefix) => $"{prefix}_attack_l2";

    /// <summary>
    /// <paramref name="keys"/> (a plain run's columns) plus every key adversarial training logs, sorted ordinally like
    /// <see cref="MetricKeys.All"/>.
    /// </summary>
    public static IReadOnlyList<string> AddTo(IReadOnlyList<string> keys, int numClasses, bool withValidation)
    {
        var all = new List<string>(keys) { PerturbationKey("train") };
        if (withValidation)
        {
            foreach (var metric in MetricKeys.Metrics(numClasses))
                all.AddRange(MetricKeys.WithQuartiles($"{RobustValidationPrefix}_{metric}"));
            all.Add(PerturbationKey(RobustValidationPrefix));
        }
        all.Sort(StringComparer.Ordinal);
        return all;
    }

    /// <summary>
    /// Adds each successful perturbation's ‖δ‖₂ to <c>{prefix}_attack_l2</c> (one value per sample, so the logged
    /// mean weighs every success equally).
    /// </summary>
    /// <param name="metrics">The trainer's metrics.</param>
    /// <param name="prefix">The pass (train or val_robust).</param>
    /// <param name="attack">The attack's result on the microbatch.</param>
    /// <param name="logits">The model's logits on the attacked microbatch.</param>
    /// <param name="labels">True classes.</param>
    public static void LogPerturbations(MetricAccumulator metrics, string prefix, AttackResult attack, Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var succeeded = attack.Succeeded(logits.detach().argmax(-1).eq(labels));
        foreach (var norm in attack.PerturbationNorm.masked_select(succeeded).cpu().data<float>().ToArray())
            metrics.AddToMean(PerturbationKey(prefix), norm);
    }
}
