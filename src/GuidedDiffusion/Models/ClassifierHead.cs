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

    /// <summary>Creates the head.</summary>
    /// <param name="options">Model arguments (pool, classes, heads).</param>
    /// <param name="channels">Channels of the middle block's output.</param>
    /// <param name="featureSize">Concatenated width of all spatial means (spatial heads).</param>
    /// <param name="spatialDim">Side of the final feature map (attention pool).</param>
    public static nn.Module<Tensor, Tensor> Create(EncoderUNetOptions options, int channels, int featureSize, int spatialDim) =>
        options.Pool switch
        {
            // out.0 norm, out.3 conv: the pool and flatten carry no parameters but keep the indices.
            ClassifierPool.Adaptive => nn.Sequential(
                new GroupNorm32(channels), nn.SiLU(), nn.AdaptiveAvgPool2d(1),
                ZeroInit.Apply(nn.Conv2d(channels, options.OutChannels, kernel_size: 1)), nn.Flatten()),
            ClassifierPool.Attention => nn.Sequential(
                new GroupNorm32(channels), nn.SiLU(),
                new AttentionPool2d(spatialDim, channels, options.NumHeadChannels, options.OutChannels)),
            ClassifierPool.Spatial => nn.Sequential(
                nn.Linear(featureSize, SpatialHidden), nn.ReLU(), nn.Linear(SpatialHidden, options.OutChannels)),
            ClassifierPool.SpatialV2 => nn.Sequential(
                nn.Linear(featureSize, SpatialHidden), new GroupNorm32(SpatialHidden), nn.SiLU(),
                nn.Linear(SpatialHidden, options.OutChannels)),
            _ => throw new ConfigurationException("pool", $"unknown pool {options.Pool}."),
        };
}
