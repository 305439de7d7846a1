using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>
/// GroupNorm(32, C) that normalises in float32 (float64 inputs: in float64) and returns the input dtype, like the original's
/// <c>GroupNorm32</c>. Written by hand because TorchSharp's nn.GroupNorm leaves its affine parameters uninitialised;
/// here weight starts at ones and bias at zeros, as in PyTorch.
/// </summary>
public sealed class GroupNorm32 : nn.Module<Tensor, Tensor>
{
    /// <summary>The number of groups every normalisation in the original uses.</summary>
    public const int Groups = 32;

    private const double Epsilon = 1e-5;

    /// <summary>Creates the layer for <paramref name="channels"/> channels (must be divisible by 32).</summary>
    /// <param name="channels">Number of channels C of the input [B, C, ...].</param>
    public GroupNorm32(long channels) : base(nameof(GroupNorm32))
    {
        if (channels <= 0 || channels % Groups != 0)
            throw new ConfigurationException("channels", $"GroupNorm32 needs a channel count divisible by {Groups}, got {channels}.");
        Channels = channels;
        register_parameter("weight", new Parameter(ones(channels, dtype: ScalarType.Float32)));
        register_parameter("bias", new Parameter(zeros(channels, dtype: ScalarType.Float32)));
    }

    /// <summary>Number of normalised channels.</summary>
    public long Channels { get; }

    /// <summary>The affine scale (float32, shape [C]).</summary>
    public Parameter Weight => (Parameter)get_parameter("weight")!;

    /// <summary>The affine shift (float32, shape [C]).</summary>
    public Parameter Bias => (Parameter)get_parameter("bias")!;

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        // Computing the statistics in float32 keeps fp16/bf16 trunks stable; the original does the same upcast.
        // A float64 model (the float64 ground truth of the parity tests) keeps float64: the original's upcast
        // would be a downcast there. On the CPU, libtorch's group_norm takes a bf16 input with float32 affine
        // parameters directly and computes in float32 inside (its mixed-type path), which gives the upcast's result
        // to within one bf16 rounding without materialising the float32 copy and the cast back (issue 26).
        if (x.dtype == ScalarType.BFloat16 && x.device_type == DeviceType.CPU)
            return nn.functional.group_norm(x, Groups, Weight, Bias, Epsilon);
        var y = nn.functional.group_norm(x.dtype == ScalarType.Float64 ? x : x.to_type(ScalarType.Float32), Groups, Weight, Bias, Epsilon);
        return y.dtype == x.dtype ? y : y.to_type(x.dtype);
    }

    /// <summary>Parameters are registered explicitly; nothing is discovered by reflection.</summary>
    protected override void RegisterComponents() { }
}
