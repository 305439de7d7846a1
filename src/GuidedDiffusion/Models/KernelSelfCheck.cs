using System.Globalization;
using GuidedDiffusion.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace GuidedDiffusion.Models;

/// <summary>The shape of a convolution layer, as the self-check rebuilds it.</summary>
/// <param name="Dims">1 (conv1d) or 2 (conv2d).</param>
/// <param name="InChannels">Input channels.</param>
/// <param name="OutChannels">Output channels.</param>
/// <param name="KernelSize">Square kernel size.</param>
/// <param name="Stride">Stride.</param>
/// <param name="Padding">Zero padding.</param>
public sealed record ConvolutionShape(int Dims, long InChannels, long OutChannels, long KernelSize, long Stride, long Padding)
{
    /// <summary>E.g. "conv2d 128→3 3×3".</summary>
    public override string ToString() =>
        $"conv{Dims}d {InChannels}→{OutChannels} {KernelSize}" + (Dims == 2 ? $"×{KernelSize}" : "") + (Stride > 1 ? $" stride {Stride}" : "");
}

/// <summary>One layer's float32 results against float64: the largest error relative to the largest float64 value.</summary>
/// <param name="Layer">The layer's state-dict prefix (e.g. <c>out.2</c>) or a probe's name.</param>
/// <param name="Shape">Its shape.</param>
/// <param name="Forward">Output error.</param>
/// <param name="InputGradient">Input-gradient (backward data) error.</param>
/// <param name="WeightGradient">Weight-gradient (backward weights) error.</param>
/// <param name="BiasGradient">Bias-gradient error.</param>
/// <param name="Dtype">The dtype the layer ran in (float32, or the half type of a bf16/fp16 trunk).</param>
public sealed record LayerCheck(string Layer, ConvolutionShape Shape, double Forward, double InputGradient, double WeightGradient, double BiasGradient, ScalarType Dtype = ScalarType.Float32)
{
    /// <summary>Whether every error is finite and within <see cref="KernelSelfCheck.ToleranceFor"/> the dtype.</summary>
    public bool Passed => new[] { Forward, InputGradient, WeightGradient, BiasGradient }.All(e => e <= KernelSelfCheck.ToleranceFor(Dtype));

    /// <summary>The worst of the four, and which pass it was.</summary>
    public (string Pass, double Error) Worst => new[] { ("forward", Forward), ("input gradient", InputGradient), ("weight gradient", WeightGradient), ("bias gradient", BiasGradient) }
        .OrderByDescending(p => double.IsNaN(p.Item2) ? double.PositiveInfinity : p.Item2).First();

    /// <summary>One line: layer, shape, the four errors.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Layer} ({Shape}{(Dtype == ScalarType.Float32 ? "" : ", " + Dtype.ToString().ToLowerInvariant())}): forward {Forward:0.0e0}, input grad {InputGradient:0.0e0}, weight grad {WeightGradient:0.0e0}, bias grad {BiasGradient:0.0e0} {(Passed ? "ok" : "WRONG")}");
}

/// <summary>
/// Checks, in milliseconds, the native kernels behind a model's unusual convolutions (channel counts that are not
/// multiples of <see cref="BlockAlignedConv.Block"/>: the 3-channel input and output, the class projection) on this
/// host: forward and both backward passes in float32, through the layer type the model uses, against float64
/// (libtorch's plain reference loops, not oneDNN). Memory the kernels do not write is made NaN first
/// (<see cref="AllocatorPoison"/>), so a kernel that reads it fails here instead of passing by luck.
/// </summary>
/// <remarks>
/// The tolerance: a float32 convolution sums K = in·k² products, each rounded to 2⁻²⁴; with K ≤ 4,608 here the
/// error stays below √K·2⁻²⁴·(a few) ≈ 1e-5 of the output scale (measured: ≤ 1e-6). 1e-4 leaves a margin of ten
/// and is still 3,000 times below the 30–50 % errors of the defect this guards against (issue 24).
/// </remarks>
public static class KernelSelfCheck
{
    /// <summary>The largest relative error accepted in float32 (see remarks).</summary>
    public const double Tolerance = 1e-4;

    /// <summary>
    /// The largest relative error accepted in a half type (bf16/fp16 trunks). The float64 reference starts from the
    /// same rounded inputs and upstream gradient, so what remains is the rounding of each result to the half type:
    /// bf16 keeps 8 significant bits, a unit roundoff of 2⁻⁸ ≈ 3.9e-3 of a value (fp16: 2⁻¹¹), with float32
    /// accumulation inside (measured: ≤ 3.5e-3). 2e-2 is a margin of five and still 15 times below the defect's errors.
    /// </summary>
    public const double HalfTolerance = 2e-2;

    /// <summary>The tolerance for a layer running in <paramref name="dtype"/>.</summary>
    public static double ToleranceFor(ScalarType dtype) => dtype is ScalarType.BFloat16 or ScalarType.Float16 ? HalfTolerance : Tolerance;

    /// <summary>The unusual convolution layers of <paramref name="model"/>, one per distinct shape (first name kept).</summary>
    public static IReadOnlyList<(string Layer, ConvolutionShape Shape, ScalarType Dtype)> UnusualLayers(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var seen = new HashSet<(ConvolutionShape, ScalarType)>();
        var layers = new List<(string, ConvolutionShape, ScalarType)>();
        foreach (var (name, module) in model.named_modules())
        {
            if (module is not Convolution conv) continue;
            var shape = ShapeOf(conv);
            if (BlockAlignedConv.IsAligned(shape.InChannels, shape.OutChannels)) continue;
            // The dtype the layer runs in: float32, or the half type of a converted trunk.
            var dtype = conv.weight.dtype;
            if (seen.Add((shape, dtype))) layers.Add((name, shape, dtype));
        }
        return layers;
    }

    /// <summary>Checks every unusual layer of <paramref name="model"/> in the dtype it runs in (see <see cref="UnusualLayers"/>).</summary>
    public static IReadOnlyList<LayerCheck> Run(nn.Module model) =>
        UnusualLayers(model).Select(l => Check(l.Layer, l.Shape, dtype: l.Dtype)).ToArray();

    /// <summary>
    /// Runs <see cref="Run"/> and throws <see cref="KernelCheckException"/>, naming the CPU and the first wrong layer,
    /// when any fails. Returns the line to log when all pass (null when the model has no unusual layer).
    /// </summary>
    /// <param name="model">The model about to be trained or sampled from (its weights are not used).</param>
    /// <param name="cpu">The CPU, for the message (<see cref="CpuFeatures.Current"/>).</param>
    public static string? EnsureCorrect(nn.Module model, CpuFeatures cpu)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        var results = Run(model);
        if (results.FirstOrDefault(r => !r.Passed) is { } bad)
        {
            var (pass, error) = bad.Worst;
            string off = double.IsNaN(error) ? "NaN" : error.ToString("0.0%", CultureInfo.InvariantCulture);
            throw new KernelCheckException(
                $"this CPU ({cpu.Model}: {cpu.Summary}) computes layer {bad.Layer} ({bad.Shape}) wrongly: its {pass} is off by "
                + $"{off} against float64 (allowed {ToleranceFor(bad.Dtype).ToString("0e0", CultureInfo.InvariantCulture)}). "
                + "Stopped before training or sampling on wrong numbers; run 'guided-diffusion doctor' and report its output.", bad);
        }
        return results.Count == 0 ? null
            : $"kernel self-check: {results.Count} unusual layer shape(s) match float64 on this CPU ({cpu.Model}: {cpu.Summary}): "
              + string.Join(", ", results.Select(r => $"{r.Layer} ({r.Shape})"));
    }

    /// <summary>
    /// Checks one shape: a fresh layer with random weights (own generator: torch's global stream is not touched) on a
    /// batch of 2 at 8×8 (or 17 tokens), float32 through <see cref="BlockAlignedConv"/> — or, with
    /// <paramref name="aligned"/> false, the raw native convolution — against float64.
    /// </summary>
    /// <param name="layer">The name to report.</param>
    /// <param name="shape">The layer's shape.</param>
    /// <param name="aligned">Through <see cref="BlockAlignedConv"/> (what the models use) or the raw kernels.</param>
    /// <param name="seed">Seed of the weights, input and upstream gradient.</param>
    /// <param name="dtype">The dtype to run in: float32, bfloat16 or float16 (the float64 reference starts from the
    /// same rounded values).</param>
    public static LayerCheck Check(string layer, ConvolutionShape shape, bool aligned = true, long seed = 0, ScalarType dtype = ScalarType.Float32)
    {
        ArgumentNullException.ThrowIfNull(shape);
        // A check of this CPU's kernels: on the CPU whatever torch's default device is (a job may run under "meta").
        // The layer's default initialisation draws from torch's global generator: put its state back, so that a run
        // samples and trains exactly as it would without the check.
        using var state = random.get_rng_state();
        try
        {
            return ComputeDevice.OnCpu(() => CheckOnCpu(layer, shape, aligned, seed, dtype));
        }
        finally
        {
            random.set_rng_state(state);
        }
    }

    private static LayerCheck CheckOnCpu(string layer, ConvolutionShape shape, bool aligned, long seed, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)seed);
        long[] spatial = shape.Dims == 2 ? [8, 8] : [17];
        var x = randn([2, shape.InChannels, .. spatial], generator: generator).to(dtype);
        var w = (randn([shape.OutChannels, shape.InChannels, .. Enumerable.Repeat(shape.KernelSize, shape.Dims)], generator: generator)
                * (1.0 / Math.Sqrt(shape.InChannels * Math.Pow(shape.KernelSize, shape.Dims)))).to(dtype);
        var b = randn([shape.OutChannels], generator: generator).to(dtype);

        var (y64, gx64, gw64, gb64) = Passes(x.to(ScalarType.Float64), w.to(ScalarType.Float64), b.to(ScalarType.Float64), shape, null, generator, seed, dtype);
        Tensor y32, gx32, gw32, gb32;
        using (AllocatorPoison.JunkFill())
        {
            AllocatorPoison.FillFreedHeap(1 << 16, 1 << 18, 1 << 20);
            using var layerUnderTest = aligned ? Aligned(shape, w, b) : null;
            (y32, gx32, gw32, gb32) = Passes(x, w, b, shape, layerUnderTest, generator, seed, dtype);
        }
        return new LayerCheck(layer, shape, Relative(y32, y64), Relative(gx32, gx64), Relative(gw32, gw64), Relative(gb32, gb64), dtype);
    }

    private static BlockAlignedConv Aligned(ConvolutionShape s, Tensor w, Tensor b)
    {
        var conv = new BlockAlignedConv(s.Dims, s.InChannels, s.OutChannels, s.KernelSize, s.Stride, s.Padding);
        conv.to(w.dtype);
        using var noGrad = no_grad();
        conv.weight.copy_(w);
        conv.bias!.copy_(b);
        return conv;
    }

    // Forward, then backward from a fixed upstream gradient (drawn after the output's shape is known, same for both dtypes).
    private static (Tensor Y, Tensor Gx, Tensor Gw, Tensor Gb) Passes(Tensor x, Tensor w, Tensor b, ConvolutionShape s, BlockAlignedConv? layer, Generator generator, long seed, ScalarType rounding)
    {
        var xg = x.detach().clone().requires_grad_(true);
        Tensor y, wg, bg;
        if (layer is not null)
        {
            y = layer.forward(xg);
            (wg, bg) = (layer.weight, layer.bias!);
        }
        else
        {
            wg = w.detach().clone().requires_grad_(true);
            bg = b.detach().clone().requires_grad_(true);
            y = s.Dims == 2
                ? F.conv2d(xg, wg, bg, [s.Stride, s.Stride], [s.Padding, s.Padding])
                : F.conv1d(xg, wg, bg, s.Stride, s.Padding);
        }
        generator.manual_seed(seed + 1);
        var upstream = randn(y.shape, generator: generator).to(x.dtype == ScalarType.Float64 ? rounding : x.dtype).to(y.dtype);
        var grads = autograd.grad([y], [xg, wg, bg], [upstream]);
        return (y.detach(), grads[0], grads[1], grads[2]);
    }

    private static double Relative(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        double scale = expected.abs().max().ToDouble();
        double error = (actual.to(ScalarType.Float64) - expected).abs().max().ToDouble();
        return double.IsNaN(error) ? double.NaN : error / Math.Max(scale, 1e-30);
    }

    private static ConvolutionShape ShapeOf(Convolution conv) =>
        new(conv.kernel_size.Length, conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.padding?[0] ?? 0);
}

/// <summary>The self-check found a layer whose native kernels compute wrong values on this host.</summary>
public sealed class KernelCheckException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public KernelCheckException(string message, LayerCheck result) : base(message) => Result = result;

    /// <summary>The failing layer's result.</summary>
    public LayerCheck Result { get; }
}
