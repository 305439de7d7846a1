using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>
/// Multi-head scaled dot-product attention over a packed [B, 3·H·C, T] tensor, in one of the original's two
/// channel layouts. Has no parameters.
/// </summary>
/// <remarks>
/// The original computes <c>softmax((q·ch^-¼)ᵀ(k·ch^-¼))</c> with two einsums and a float32 softmax. Here the
/// same product runs through <c>scaled_dot_product_attention</c>, whose default scale is ch^-½ — the same
/// number, applied once to the product instead of twice to the operands (that split was the original's fp16
/// overflow guard; it changes only float32 rounding, ~1e-7 relative). On the CPU libtorch's fused (flash)
/// kernel then does QKᵀ, softmax and A·V in tiles, accumulating softmax statistics in float32 for every input
/// dtype, never materialising the T×T matrix (134 MB per block at 32×32 and batch 16) and running at about
/// twice einsum's rate. That kernel takes only 4-D [B, H, T, C] inputs whose last dimension is contiguous;
/// anything else silently falls back to libtorch's unfused math path, so the layout below is chosen for it.
/// </remarks>
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
        // Channels are laid out (H, 3, C) in the legacy order and (3, H, C) in the new one; either way one copy
        // brings them to [3, B, H, T, C] with C contiguous, the layout the fused kernel needs.
        var packed = LegacyOrder
            ? qkv.reshape(bs, Heads, 3, ch, length).permute(2, 0, 1, 4, 3)
            : qkv.reshape(bs, 3, Heads, ch, length).permute(1, 0, 2, 4, 3);
        packed = packed.contiguous();
        var a = nn.functional.scaled_dot_product_attention(packed[0], packed[1], packed[2]);
        // [B, H, T, C] → [B, H·C, T], heads outermost as in the original's reshape.
        return a.transpose(-1, -2).reshape(bs, Heads * ch, length);
    }
}
