using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>
/// Halves the spatial resolution: a 3×3 stride-2 convolution (<c>conv_resample</c>) or a 2×2 average pool,
/// registered as <c>op</c> like the original.
/// </summary>
public sealed class Downsample : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> op;

    /// <summary>Creates the layer.</summary>
    /// <param name="channels">Input channels.</param>
    /// <param name="useConv">True: learned stride-2 convolution; false: average pooling (channels unchanged).</param>
    /// <param name="outChannels">Output channels (defaults to <paramref name="channels"/>).</param>
    public Downsample(long channels, bool useConv, long? outChannels = null) : base(nameof(Downsample))
    {
        Channels = channels;
        OutChannels = outChannels ?? channels;
        if (useConv)
        {
            op = Conv.Nd2(channels, OutChannels, 3, stride: 2, padding: 1);
        }
        else
        {
            if (OutChannels != channels)
                throw new ArgumentException($"average-pool downsampling cannot change channels ({channels} -> {OutChannels}).", nameof(outChannels));
            op = nn.AvgPool2d(kernel_size: 2, stride: 2);
        }
        register_module("op", op);
    }

    /// <summary>Input channels.</summary>
    public long Channels { get; }

    /// <summary>Output channels.</summary>
    public long OutChannels { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => op.call(x);

    /// <summary>Children are registered explicitly.</summary>
    protected override void RegisterComponents() { }
}
