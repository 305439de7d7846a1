using static TorchSharp.torch;

namespace GuidedDiffusion;

/// <summary>
/// Top-k accuracy, the one definition the trainer's <c>acc@1</c>/<c>acc@5</c>, the per-noise-level evaluation and
/// the sample agreement all use (the original's <c>compute_top_k</c>): a sample counts when its label is among the
/// k highest scores.
/// </summary>
internal static class TopKAccuracy
{
    /// <summary>
    /// Per sample, whether <paramref name="labels"/>[i] is among the <paramref name="k"/> largest entries of row i
    /// of <paramref name="scores"/> (logits, log-probabilities or probabilities: any monotone transform gives the
    /// same answer). A boolean tensor of shape [N] on the scores' device; the scores are not differentiated.
    /// </summary>
    /// <param name="scores">[N, classes] scores.</param>
    /// <param name="labels">[N] int64 class indices.</param>
    /// <param name="k">How many top classes count; at most the number of classes.</param>
    public static Tensor Hits(Tensor scores, Tensor labels, int k) => HitsAmong(scores.detach().topk(k, dim: -1).indexes, labels);

    /// <summary>Per sample, whether <paramref name="labels"/>[i] is in row i of <paramref name="topIndexes"/>, the
    /// [N, k] class indices of an already computed <c>topk</c> (for callers that also need its first column).</summary>
    public static Tensor HitsAmong(Tensor topIndexes, Tensor labels) => topIndexes.eq(labels.unsqueeze(1)).any(-1);
}
