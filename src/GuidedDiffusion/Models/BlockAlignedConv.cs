using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace GuidedDiffusion.Models;

/// <summary>
/// A 1-D or 2-D convolution (same parameters, state-dict keys and initialisation as <c>nn.Conv1d</c>/<c>nn.Conv2d</c>)
/// whose native kernels only ever see channel counts that are whole multiples of <see cref="Block"/>: when the
/// output channels (or, for a backward pass into the input, the input channels) are not, the weights, bias and input
/// are zero-padded up to the next multiple before the convolution and the output is sliced back.
/// </summary>
/// <remarks>
/// <para>Why: libtorch 2.10's oneDNN 3.7.1 runs such convolutions in a blocked layout (<c>aBcd16b</c>, or
/// <c>aBcd8b</c> on AVX2) whose last block is padded, reordering the tensors into and out of it. On some AMD Zen 5
/// hosts that path returned NaN or 30–50 % wrong input gradients for 1–8 output channels (issue 24; the diffusion
/// UNet's 3- or 6-channel output convolution, the classifier's class projection and the guidance gradient through the
/// 3-channel first convolution all take it). With the channels padded here, oneDNN sees no padded block at all: the
/// padded channels are real zeros in our own tensors, not memory the library must initialise.</para>
/// <para>What it costs: the padded output channels are computed and thrown away. The layers it applies to are the
/// thin ones (a 3×3 convolution to 3 channels, a 1×1 projection to the classes), a few per cent of a step; measured in
/// BENCHMARKS.md. Shapes that are already multiples of the block take the plain path unchanged.</para>
/// </remarks>
public sealed class BlockAlignedConv : Convolution
{
    /// <summary>The channel block: oneDNN's AVX-512 float32 block (16); a multiple of its AVX2 block (8).</summary>
    public const int Block = 16;

    private readonly int _dims;

    /// <summary>Creates the convolution; the weight and bias are initialised exactly as <c>nn.Conv1d</c>/<c>nn.Conv2d</c> do.</summary>
    /// <param name="dims">1 (conv1d over [N, C, L]) or 2 (conv2d over [N, C, H, W]).</param>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="kernelSize">Square kernel size.</param>
    /// <param name="stride">Stride.</param>
    /// <param name="padding">Zero padding on every side.</param>
    public BlockAlignedConv(int dims, long inChannels, long outChannels, long kernelSize, long stride = 1, long padding = 0)
        : base(dims == 1 ? nameof(Conv1d) : nameof(Conv2d), inChannels, outChannels, Repeat(kernelSize, dims),
            Repeat(stride, dims), Repeat(padding, dims), null, Repeat(1, dims), false, Repeat(0, dims), 1, true, PaddingModes.Zeros)
    {
        if (dims is not (1 or 2)) throw new ArgumentOutOfRangeException(nameof(dims), dims, "1 or 2");
        _dims = dims;
    }

    /// <summary>
    /// Whether channel padding is applied (default true). Off only to measure the unpadded path (the A/B benchmark
    /// and <c>guided-diffusion doctor</c>'s probe of the raw kernels); never turn it off to train. Read once from the
    /// environment and fixed for the process: it picks a kernel path without changing results, so it is no run setting,
    /// and one process must not mix the two paths.
    /// </summary>
    public static bool Enabled { get; } = !string.Equals(Environment.GetEnvironmentVariable("GUIDED_DIFFUSION_CONV_ALIGN"), "off", StringComparison.OrdinalIgnoreCase);

    /// <summary><paramref name="channels"/> rounded up to a multiple of <see cref="Block"/>.</summary>
    public static long Aligned(long channels) => (channels + Block - 1) / Block * Block;

    /// <summary>Whether a convolution with these channel counts needs no padding: both are multiples of <see cref="Block"/>.</summary>
    public static bool IsAligned(long inChannels, long outChannels) => inChannels % Block == 0 && outChannels % Block == 0;

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        var weight = this.weight;
        var bias = this.bias;
        long padOut = Enabled ? Aligned(out_channels) - out_channels : 0;
        // The input side matters only for the backward pass into the input (guidance, PGD, inner layers in training).
        long padIn = Enabled && input.requires_grad ? Aligned(in_channels) - in_channels : 0;
        if (padOut == 0 && padIn == 0) return Convolve(input, weight, bias);

        using var scope = NewDisposeScope();
        // F.pad lists (before, after) pairs from the last dimension back: the spatial (kernel) dims stay, then the
        // input channels (weight dim 1, input dim 1), then the output channels (weight dim 0).
        long[] spatial = Repeat(0, 2 * _dims);
        var w = F.pad(weight, [.. spatial, 0, padIn, 0, padOut]);
        var b = bias is null || padOut == 0 ? bias : F.pad(bias, [0, padOut]);
        var x = padIn > 0 ? F.pad(input, [.. spatial, 0, padIn]) : input;
        var y = Convolve(x, w, b);
        return (padOut > 0 ? y.narrow(1, 0, out_channels) : y).MoveToOuterDisposeScope();
    }

    private Tensor Convolve(Tensor input, Tensor weight, Tensor? bias) => _dims == 1
        ? F.conv1d(input, weight, bias, stride[0], padding![0], dilation[0], groups)
        : F.conv2d(input, weight, bias, stride, padding, dilation, groups);

    private static long[] Repeat(long value, int dims) => Enumerable.Repeat(value, dims).ToArray();
}

/// <summary>
/// The models' convolution factory: <c>nn.Conv1d</c>/<c>nn.Conv2d</c> where both channel counts are multiples of
/// <see cref="BlockAlignedConv.Block"/>, a <see cref="BlockAlignedConv"/> (same keys, shapes and initialisation)
/// where either is not.
/// </summary>
internal static class Conv
{
    /// <summary>A 2-D convolution (the original's <c>conv_nd(2, ...)</c>).</summary>
    public static Convolution Nd2(long inChannels, long outChannels, long kernelSize, long stride = 1, long padding = 0) =>
        BlockAlignedConv.IsAligned(inChannels, outChannels)
            ? nn.Conv2d(inChannels, outChannels, kernelSize, stride: stride, padding: padding)
            : new BlockAlignedConv(2, inChannels, outChannels, kernelSize, stride, padding);

    /// <summary>A 1-D convolution (the original's <c>conv_nd(1, ...)</c>: attention projections).</summary>
    public static Convolution Nd1(long inChannels, long outChannels, long kernelSize) =>
        BlockAlignedConv.IsAligned(inChannels, outChannels)
            ? nn.Conv1d(inChannels, outChannels, kernelSize)
            : new BlockAlignedConv(1, inChannels, outChannels, kernelSize);
}
