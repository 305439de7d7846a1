using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>
/// Multi-head scaled dot-product attention over a packed [B, 3·H·C, T] tensor, in one of the original's two
/// channel layouts. Has no parameters.
/// </summary>
public sealed class QKVAttention : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates the attention.</summary>
    /// <param name="heads">Number of heads H.</param>
    /// <param name="legacyOrder">
    /// True: <c>QKVAttentionLegacy</c> — split heads first, then q, k, v (used by every AttentionBlock unless
    /// use_new_attention_order). False: <c>QKVAttention</c> — split q, k, v first, then heads (always used by the
    /// attention pool).
    /// </param>
    public QKVAttention(long heads, bool legacyOrder) : base(legacyOrder ? "QKVAttentionLegacy" : nameof(QKVAttention))
    {
        if (heads <= 0) throw new ArgumentOutOfRangeException(nameof(heads), heads, "need at least one head");
        Heads = heads;
        LegacyOrder = legacyOrder;
    }

    /// <summary>Number of heads.</summary>
    public long Heads { get; }

    /// <summary>Whether heads are split before q, k, v (the legacy layout).</summary>
    public bool LegacyOrder { get; }

    /// <summary>Attends over qkv [B, 3·H·C, T] and returns [B, H·C, T].</summary>
    public override Tensor forward(Tensor qkv)
    {
        long bs = qkv.shape[0], width = qkv.shape[1], length = qkv.shape[2];
        if (width % (3 * Heads) != 0)
            throw new ArgumentException($"qkv width {width} is not divisible by 3·heads = {3 * Heads}.", nameof(qkv));
        long ch = width / (3 * Heads);
        // Scaling q and k by ch^-1/4 each (not the product by ch^-1/2) is the original's fp16-friendly choice.
        double scale = 1 / Math.Sqrt(Math.Sqrt(ch));
        Tensor q, k, v;
        if (LegacyOrder)
        {
            var parts = qkv.reshape(bs * Heads, ch * 3, length).split(ch, dim: 1);
            (q, k, v) = (parts[0] * scale, parts[1] * scale, parts[2]);
        }
        else
        {
            var parts = qkv.chunk(3, dim: 1);
            q = (parts[0] * scale).view(bs * Heads, ch, length);
            k = (parts[1] * scale).view(bs * Heads, ch, length);
            v = parts[2].reshape(bs * Heads, ch, length);
        }
        var weight = einsum("bct,bcs->bts", q, k);
        weight = softmax(weight.to_type(ScalarType.Float32), dim: -1).to_type(weight.dtype);
        var a = einsum("bts,bcs->bct", weight, v);
        return a.reshape(bs, -1, length);
    }
}
