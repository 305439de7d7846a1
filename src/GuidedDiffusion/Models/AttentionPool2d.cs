using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>
/// CLIP-style attention pooling, the classifier's default head: the spatial mean is prepended as an extra token,
/// a learned positional embedding is added, every token attends (new q/k/v order), and the output of the mean
/// token is projected to the logits. Keys: <c>positional_embedding</c> [C, S²+1], <c>qkv_proj</c>, <c>c_proj</c>.
/// </summary>
public sealed class AttentionPool2d : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> qkvProj;
    private readonly QKVAttention attention;
    private readonly nn.Module<Tensor, Tensor> cProj;

    /// <summary>Creates the pool.</summary>
    /// <param name="spatialDim">Side S of the (square) feature map it pools.</param>
    /// <param name="embedDim">Channels C of the features.</param>
    /// <param name="numHeadChannels">Channels per head (heads = C / this).</param>
    /// <param name="outputDim">Output width (number of classes); defaults to C.</param>
    public AttentionPool2d(long spatialDim, long embedDim, long numHeadChannels, long? outputDim = null)
        : base(nameof(AttentionPool2d))
    {
        if (numHeadChannels <= 0 || embedDim % numHeadChannels != 0)
            throw new ConfigurationException("num_head_channels",
                $"attention pool channels {embedDim} are not divisible by num_head_channels {numHeadChannels}.");
        SpatialDim = spatialDim;
        Heads = embedDim / numHeadChannels;
        // Same initialisation as the original: randn / sqrt(C).
        register_parameter("positional_embedding",
            new Parameter(randn(embedDim, spatialDim * spatialDim + 1) / Math.Sqrt(embedDim)));
        qkvProj = Conv.Nd1(embedDim, 3 * embedDim, 1);
        cProj = Conv.Nd1(embedDim, outputDim ?? embedDim, 1);
        attention = new QKVAttention(Heads, legacyOrder: false);
        register_module("qkv_proj", qkvProj);
        register_module("c_proj", cProj);
        register_module("attention", attention);
    }

    /// <summary>Side of the square feature map the positional embedding is sized for.</summary>
    public long SpatialDim { get; }

    /// <summary>Number of attention heads.</summary>
    public long Heads { get; }

    /// <summary>The learned positional embedding [C, S²+1] (token 0 is the mean token).</summary>
    public Parameter PositionalEmbedding => (Parameter)get_parameter("positional_embedding")!;

    /// <summary>Pools x [B, C, S, S] to [B, outputDim].</summary>
    public override Tensor forward(Tensor x) => Forward(x, observe: null);

    /// <summary>
    /// <see cref="forward"/> that also reports, as <see cref="EncoderUNet.FeaturesActivation"/>, the mean token's
    /// attention output [B, C]: the input of <c>c_proj</c>, the last linear map (1×1 convolutions act on each
    /// token alone, so the logits are c_proj of exactly these features).
    /// </summary>
    /// <param name="x">Features [B, C, S, S].</param>
    /// <param name="observe">Called with (name, activation), or null.</param>
    public Tensor Forward(Tensor x, Action<string, Tensor>? observe)
    {
        long b = x.shape[0], c = x.shape[1];
        if (x.shape[2] * x.shape[3] != SpatialDim * SpatialDim)
            throw new ArgumentException(
                $"the attention pool was built for {SpatialDim}×{SpatialDim} features (the model's image_size) but got "
                + $"{x.shape[2]}×{x.shape[3]}; feed images of the size the classifier was built for.", nameof(x));
        x = x.reshape(b, c, -1);
        x = cat(new[] { x.mean(new long[] { -1 }, keepdim: true), x }, dim: -1);
        x = x + PositionalEmbedding.unsqueeze(0).to_type(x.dtype);
        x = attention.call(qkvProj.call(x));
        observe?.Invoke(EncoderUNet.FeaturesActivation, x[.., .., 0]);
        // c_proj on every token, then the mean token, as the original does: the logits stay bit-identical.
        return cProj.call(x)[.., .., 0];
    }

    /// <summary>Children are registered explicitly, in the original's order.</summary>
    protected override void RegisterComponents() { }
}
