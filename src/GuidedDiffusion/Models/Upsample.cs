using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>
/// Doubles the spatial resolution by nearest-neighbour interpolation, optionally followed by a 3×3 convolution
/// (<c>conv_resample</c>) registered as <c>conv</c> like the original's <c>Upsample</c>.
/// </summary>
public sealed class Upsample : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor>? conv;

    /// <summary>Creates the layer.</summary>
    /// <param name="channels">Input channels.</param>
    /// <param name="useConv">True: a 3×3 convolution after the interpolation; false: interpolation only.</param>
    /// <param name="outChannels">Output channels (defaults to <paramref name="channels"/>).</param>
    public Upsample(long channels, bool useConv, long? outChannels = null) : base(nameof(Upsample))
    {
        Channels = channels;
        OutChannels = outChannels ?? channels;
        if (useConv)
        {
            conv = Conv.Nd2(channels, OutChannels, 3, padding: 1);
            register_module("conv", conv);
        }
        else if (OutChannels != channels)
        {
            throw new ArgumentException($"upsampling without a convolution cannot change channels ({channels} -> {OutChannels}).", nameof(outChannels));
        }
    }

    /// <summary>Input channels.</summary>
    public long Channels { get; }

    /// <summary>Output channels.</summary>
    public long OutChannels { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        if (x.shape[1] != Channels)
            throw new ArgumentException($"Upsample expects {Channels} channels, got [{string.Join(", ", x.shape)}].", nameof(x));
        var h = nn.functional.interpolate(x, scale_factor: new[] { 2.0, 2.0 }, mode: InterpolationMode.Nearest);
        return conv is null ? h : conv.call(h);
    }

    /// <summary>Children are registered explicitly.</summary>
    protected override void RegisterComponents() { }
}
