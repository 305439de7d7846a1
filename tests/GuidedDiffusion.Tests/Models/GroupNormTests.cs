using GuidedDiffusion.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Models;

/// <summary>
/// GroupNorm32 on a bf16 trunk: libtorch's mixed-type kernel (bf16 input, float32 affine, float32 arithmetic inside)
/// against a float64 ground truth of the same bf16-valued input, and against the original's formula (upcast to
/// float32, normalise, cast back).
/// </summary>
public sealed class GroupNormTests
{
    // The result is rounded to bf16 once: at most half an ulp, 2^-9 relative (one ulp, 2^-8, allowed for the
    // float32 arithmetic before the rounding: its own error, ~1e-6 relative, can move a value across a rounding
    // boundary). Values near zero carry the float32 error of the subtraction x − mean, ~1e-6 of the largest value.
    private const double Bf16Ulp = 1.0 / 256;

    private static (Tensor Output, Tensor InputGrad, Tensor WeightGrad, Tensor BiasGrad) Run(GroupNorm32 norm, Tensor x, Tensor upstream)
    {
        var input = x.detach().clone().requires_grad_(true);
        norm.zero_grad();
        var y = norm.call(input);
        (y.to_type(ScalarType.Float64) * upstream).sum().backward();
        return (y.detach(), input.grad!.detach(), norm.Weight.grad!.detach().clone(), norm.Bias.grad!.detach().clone());
    }

    private static void AssertWithinBf16Rounding(Tensor actual, Tensor expected, string what)
    {
        var a = actual.to_type(ScalarType.Float64);
        var e = expected.to_type(ScalarType.Float64);
        double scale = e.abs().max().item<double>();
        var excess = ((a - e).abs() - (Bf16Ulp * e.abs() + 1e-5 * scale)).max().item<double>();
        Assert.True(excess <= 0, $"{what}: error exceeds one bf16 rounding by {excess:0.###e0} (largest |value| {scale:0.###})");
    }

    [Fact]
    public void Bf16Input_MatchesTheFloat64Normalisation_ForwardAndGradients()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var norm = new GroupNorm32(64);
        using (no_grad())
        {
            norm.Weight.copy_(rand(64) + 0.5);
            norm.Bias.copy_(randn(64) * 0.1);
        }
        // Offsets per channel make the mean matter (a cast-free kernel that skipped the float32 statistics would show).
        var x = (randn(4, 64, 8, 8) * 3 + randn(1, 64, 1, 1) * 5).to_type(ScalarType.BFloat16);
        // The upstream gradient reaches a bf16 output as bf16: both runs get the same bf16-valued one.
        var upstream = randn(4, 64, 8, 8).to_type(ScalarType.BFloat16).to_type(ScalarType.Float64);

        var (y, dx, dw, db) = Run(norm, x, upstream);
        Assert.Equal(ScalarType.BFloat16, y.dtype);
        Assert.Equal(ScalarType.BFloat16, dx.dtype);

        using var norm64 = new GroupNorm32(64);
        norm64.to(ScalarType.Float64);
        using (no_grad())
        {
            norm64.Weight.copy_(norm.Weight);
            norm64.Bias.copy_(norm.Bias);
        }
        var (y64, dx64, dw64, db64) = Run(norm64, x.to_type(ScalarType.Float64), upstream);

        AssertWithinBf16Rounding(y, y64, "output");
        AssertWithinBf16Rounding(dx, dx64, "input gradient");
        // The affine gradients are float32 sums over 256 bf16 products each: float32 accumulation error, far below bf16's.
        AssertWithinBf16Rounding(dw, dw64, "weight gradient");
        AssertWithinBf16Rounding(db, db64, "bias gradient");
    }

    [Fact]
    public void Bf16Input_EqualsTheOriginalsUpcastFormula_WithinOneRounding()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        using var norm = new GroupNorm32(32);
        var x = (randn(2, 32, 16, 16) * 2 + 1).to_type(ScalarType.BFloat16);
        var ours = norm.call(x);
        // The original's GroupNorm32.forward: super().forward(x.float()).type(x.dtype).
        var original = nn.functional.group_norm(x.to_type(ScalarType.Float32), 32, norm.Weight, norm.Bias, 1e-5).to_type(ScalarType.BFloat16);
        AssertWithinBf16Rounding(ours, original.to_type(ScalarType.Float64), "output against the upcast formula");
    }
}
