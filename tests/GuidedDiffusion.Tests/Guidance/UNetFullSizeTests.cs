using System.Diagnostics;
using System.Text.Json;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Models;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Guidance;

/// <summary>
/// The released diffusion models (64×64 class-conditional, 128×128, 256×256 conditional and unconditional) built
/// from the README flags: the original's state-dict keys, order, shapes and parameter counts, and the 64×64
/// model's output with the formula weights.
/// </summary>
public class UNetFullSizeTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("released_64x64_diffusion")]
    [InlineData("released_128x128_diffusion")]
    public void StateDictManifest_MatchesReleasedDiffusionModel(string name) => CheckManifest(name);

    [Theory, Trait("Category", "Slow")]
    [InlineData("released_256x256_diffusion")]
    [InlineData("released_256x256_diffusion_uncond")]
    public void StateDictManifest_MatchesReleasedDiffusionModel_256(string name) => CheckManifest(name);

    // ~100 s on 2 quiet cores: filling 296 M formula weights dominates (the float32 forward takes ~16 s, the
    // float64 ground truth about twice that).
    [Fact, Trait("Category", "Slow")]
    public void FormulaForward_MatchesReference_released_64x64_diffusion()
    {
        var clock = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        const string name = "released_64x64_diffusion";
        var json = Reference.Json($"guidance/full_size/{name}.json");
        var check = json.GetProperty("formula_check");
        var expected = Reference.Tensors($"guidance/full_size/{name}_formula_forward.safetensors");
        // Built with use_fp16=False and in eval mode (the 64×64 model's dropout 0.1 is then inactive), as the reference.
        var config = GuidanceReference.ConfigFromFlags(json.GetProperty("flags")) with { UseFp16 = false };
        using var model = new UNetModel(config);
        model.eval();
        double salt = check.GetProperty("salt").GetDouble();
        ReferenceModels.FillFormulaWeights(model, salt);
        AssertFormulaWeightsMatch(model, check.GetProperty("per_param_sum_and_first3"));
        var x = ReferenceModels.FormulaInput(check.GetProperty("input_shape").EnumerateArray().Select(e => e.GetInt64()).ToArray(), salt);
        Reference.AssertClose(x, expected["x"], 0, 1e-7, "formula input");
        long built = clock.ElapsedMilliseconds;
        Tensor result;
        using (no_grad())
            result = model.forward(x, expected["timesteps"], expected["y"]);
        output.WriteLine($"build+fill {built} ms, forward {clock.ElapsedMilliseconds - built} ms");
        // Ground truth: the same model and input in float64.
        model.to(ScalarType.Float64);
        model.ConvertTrunkTo(ScalarType.Float64);
        Tensor truth;
        using (no_grad())
            truth = model.forward(x.to_type(ScalarType.Float64), expected["timesteps"], expected["y"]);
        var reference = expected["output"].to_type(ScalarType.Float64);
        double ours = (result.to_type(ScalarType.Float64) - truth).abs().max().item<double>();
        double theirs = (reference - truth).abs().max().item<double>();
        double vsReference = (result.to_type(ScalarType.Float64) - reference).abs().max().item<double>();
        output.WriteLine($"max |ours - f64| {ours:E3}, max |PyTorch - f64| {theirs:E3}, max |ours - PyTorch| {vsReference:E3}, max |f64| {truth.abs().max().item<double>():E3}");
        // Why the tolerances hold. Both float32 forwards carry rounding error against the float64 forward of the
        // same weights and input (the sinusoid of t is float32 in all three, so it is common): PyTorch 1.13's is
        // 9.3e-5 at most (|output| ≤ 0.49, 296 M parameters, 28 attention blocks). With the original's einsum
        // attention ours was 2.30e-4 from PyTorch — about twice PyTorch's own error against float64, and over the
        // 2e-4 this test allowed. The attention was the cause: through scaled_dot_product_attention (QKVAttention)
        // ours is 9.6e-5 from float64 and 6.8e-5 from PyTorch (2026-12-01). So: ours must be as accurate as the
        // original's float32 (within 1.5× its error against float64; the einsum path was ~2×), and the 2e-4
        // against PyTorch's numbers stays.
        Assert.True(ours <= 1.5 * theirs, $"float32 error against float64 {ours:E3} exceeds 1.5 × PyTorch's {theirs:E3}");
        Reference.AssertClose(result, expected["output"], 0, 2e-4, "64x64 formula output");
    }

    private void CheckManifest(string name)
    {
        var clock = Stopwatch.StartNew();
        var json = Reference.Json($"guidance/full_size/{name}.json");
        var config = GuidanceReference.ConfigFromFlags(json.GetProperty("flags"));
        var options = config.ToOptions();
        var passes = GuidanceReference.OptionsFrom(json.GetProperty("create_model_passes"));
        Assert.Equal(passes.AttentionResolutions, options.AttentionResolutions);
        Assert.Equal(passes.ChannelMult, options.ChannelMult);
        Assert.Equal(passes with { AttentionResolutions = options.AttentionResolutions, ChannelMult = options.ChannelMult }, options);

        using var model = new UNetModel(options);
        ReferenceModels.AssertMatchesManifest(json, model);
        output.WriteLine($"{name}: {clock.ElapsedMilliseconds} ms");
    }

    private static void AssertFormulaWeightsMatch(nn.Module model, JsonElement perParam)
    {
        var text = perParam.ValueKind == JsonValueKind.String ? perParam.GetString()!.Replace('\'', '"') : perParam.GetRawText();
        using var doc = JsonDocument.Parse(text);
        var stateDict = model.state_dict();
        int checkedRows = 0;
        foreach (var row in doc.RootElement.EnumerateArray())
        {
            var values = stateDict[row[0].GetString()!];
            var first3 = row[2].EnumerateArray().Select(e => e.GetDouble()).ToArray();
            var head = values.flatten()[..first3.Length].Float64();
            for (int i = 0; i < first3.Length; i++)
                Assert.Equal(first3[i], head[i], 1e-7);
            Assert.Equal(row[1].GetDouble(), values.to_type(ScalarType.Float64).sum().ToDouble(), 1e-6 * Math.Max(1, values.numel() / 1000.0));
            checkedRows++;
        }
        Assert.Equal(stateDict.Count, checkedRows);
    }
}
