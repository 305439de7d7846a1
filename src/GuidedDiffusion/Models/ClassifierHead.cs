using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>Builds the <c>out</c> Sequential of each <see cref="ClassifierPool"/>, with the original's layer indices.</summary>
internal static class ClassifierHead
{
    /// <summary>The hidden width of the spatial heads, hard-coded in the original.</summary>
    public const int SpatialHidden = 2048;

    /// <summary>The state-dict key of the head's output bias (one entry per class) for <paramref name="pool"/>.</summary>
    public static string OutputBiasKey(ClassifierPool pool) => pool switch
    {
        ClassifierPool.Adaptive => "out.3.bias",
        ClassifierPool.Attention => "out.2.c_proj.bias",
        ClassifierPool.Spatial => "out.2.bias",
        ClassifierPool.SpatialV2 => "out.3.bias",
        _ => throw new ConfigurationException("pool", $"unknown pool {pool}."),
    };

    /// <summary>
    /// The head's layers, in the order of the <c>out</c> Sequential (its state-dict indices), and the index of the
    /// layer whose output is the penultimate features: the input of the last linear map (the 1×1 conv of
    /// <c>adaptive</c>, the second Linear of the spatial heads). −1 for <c>attention</c>, whose last linear map
    /// (<c>c_proj</c>) sits inside <see cref="AttentionPool2d"/>, which reports the features itself.
    /// </summary>
    /// <param name="options">Model arguments (pool, classes, heads).</param>
    /// <param name="channels">Channels of the middle block's output.</param>
    /// <param name="featureSize">Concatenated width of all spatial means (spatial heads).</param>
    /// <param name="spatialDim">Side of the final feature map (attention pool).</param>
    public static (nn.Module<Tensor, Tensor>[] Layers, int FeatureLayer) Create(EncoderUNetOptions options, int channels, int featureSize, int spatialDim) =>
        options.Pool switch
        {
            // out.0 norm, out.3 conv: the pool and flatten carry no parameters but keep the indices.
            ClassifierPool.Adaptive => ([
                new GroupNorm32(channels), nn.SiLU(), nn.AdaptiveAvgPool2d(1),
                ZeroInit.Apply(Conv.Nd2(channels, options.OutChannels, 1)), nn.Flatten()], 2),
            ClassifierPool.Attention => ([
                new GroupNorm32(channels), nn.SiLU(),
                new AttentionPool2d(spatialDim, channels, options.NumHeadChannels, options.OutChannels)], -1),
            ClassifierPool.Spatial => ([
                nn.Linear(featureSize, SpatialHidden), nn.ReLU(), nn.Linear(SpatialHidden, options.OutChannels)], 1),
            ClassifierPool.SpatialV2 => ([
                nn.Linear(featureSize, SpatialHidden), new GroupNorm32(SpatialHidden), nn.SiLU(),
                nn.Linear(SpatialHidden, options.OutChannels)], 2),
            _ => throw new ConfigurationException("pool", $"unknown pool {options.Pool}."),
        };

    /// <summary>Width of the penultimate features of <paramref name="pool"/>'s head.</summary>
    /// <param name="pool">The head.</param>
    /// <param name="channels">Channels of the middle block's output (adaptive and attention heads pool them).</param>
    public static int FeatureWidth(ClassifierPool pool, int channels) =>
        pool is ClassifierPool.Spatial or ClassifierPool.SpatialV2 ? SpatialHidden : channels;
}
