using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>
/// Self-attention over all spatial positions with a residual connection: GroupNorm, 1×1 conv1d to q, k, v,
/// multi-head attention, zero-initialised 1×1 conv1d output projection. Keys: <c>norm</c>, <c>qkv</c>,
/// <c>proj_out</c>.
/// </summary>
public sealed class AttentionBlock : nn.Module<Tensor, Tensor>
{
    private readonly GroupNorm32 norm;
    private readonly nn.Module<Tensor, Tensor> qkv;
    private readonly QKVAttention attention;
    private readonly nn.Module<Tensor, Tensor> projOut;

    /// <summary>Creates the block.</summary>
    /// <param name="channels">Channels C of the input.</param>
    /// <param name="numHeads">Heads, used when <paramref name="numHeadChannels"/> is −1.</param>
    /// <param name="numHeadChannels">Channels per head (heads = C / this); −1 to use <paramref name="numHeads"/>.</param>
    /// <param name="useNewAttentionOrder">Split q, k, v before heads instead of the legacy layout.</param>
    /// <param name="useCheckpoint">Gradient checkpointing: recompute the block in the backward instead of keeping its
    /// activations (<see cref="GradientCheckpoint"/>). The original always checkpoints its attention blocks; see
    /// <see cref="UNetTrunkOptions.UseCheckpoint"/> for why this port does so only when asked.</param>
    public AttentionBlock(long channels, long numHeads = 1, long numHeadChannels = -1, bool useNewAttentionOrder = false,
        bool useCheckpoint = false)
        : base(nameof(AttentionBlock))
    {
        Channels = channels;
        UseCheckpoint = useCheckpoint;
        if (numHeadChannels == -1)
        {
            Heads = numHeads;
        }
        else
        {
            if (numHeadChannels <= 0 || channels % numHeadChannels != 0)
                throw new ConfigurationException("num_head_channels",
                    $"q,k,v channels {channels} is not divisible by num_head_channels {numHeadChannels}.");
            Heads = channels / numHeadChannels;
        }
        norm = new GroupNorm32(channels);
        qkv = Conv.Nd1(channels, channels * 3, 1);
        attention = new QKVAttention(Heads, legacyOrder: !useNewAttentionOrder);
        projOut = ZeroInit.Apply(Conv.Nd1(channels, channels, 1));
        register_module("norm", norm);
        register_module("qkv", qkv);
        register_module("attention", attention);
        register_module("proj_out", projOut);
    }

    /// <summary>Channels of the input and output.</summary>
    public long Channels { get; }

    /// <summary>Number of attention heads.</summary>
    public long Heads { get; }

    /// <summary>Whether the block is recomputed in the backward instead of keeping its activations.</summary>
    public bool UseCheckpoint { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => UseCheckpoint
        ? GradientCheckpoint.Apply(inputs => Forward(inputs[0]), [x], parameters(), preserveRng: false)
        : Forward(x);

    private Tensor Forward(Tensor x)
    {
        var shape = x.shape;
        x = x.reshape(shape[0], shape[1], -1);
        var h = projOut.call(attention.call(qkv.call(norm.call(x))));
        return (x + h).reshape(shape);
    }

    /// <summary>Children are registered explicitly, in the original's order.</summary>
    protected override void RegisterComponents() { }
}
