using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Models;

/// <summary>
/// The released classifiers (64 depth 4, 128, 256, 512) and the default flags: the same state-dict keys, order,
/// shapes, dtypes and parameter count as the original, and the same logits with the formula weights.
/// </summary>
public class FullSizeTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("classifier_defaults_64")]
    [InlineData("released_64x64_classifier")]
    [InlineData("released_128x128_classifier")]
    [InlineData("released_256x256_classifier")]
    [InlineData("released_512x512_classifier")]
    public void StateDictManifest_MatchesReleasedClassifier(string name)
    {
        var json = Reference.Json($"models/full_size/{name}.json");
        var config = ReferenceModels.ConfigFromFlags(json.GetProperty("flags"));
        AssertOptionsMatch(json.GetProperty("create_classifier_passes"), config.ToOptions());
        using var model = new EncoderUNet(config);
        ReferenceModels.AssertMatchesManifest(json, model);
    }

    [Fact]
    public void FormulaLogits_MatchReference_classifier_defaults_64() => CheckFormulaLogits("classifier_defaults_64", checkGenerator: true);

    [Fact]
    public void FormulaLogits_MatchReference_released_64x64_classifier() => CheckFormulaLogits("released_64x64_classifier");

    [Fact]
    public void FormulaLogits_MatchReference_released_128x128_classifier() => CheckFormulaLogits("released_128x128_classifier");

    [Fact, Trait("Category", "Slow")]
    public void FormulaLogits_MatchReference_released_256x256_classifier() => CheckFormulaLogits("released_256x256_classifier");

    [Fact, Trait("Category", "Slow")]
    public void FormulaLogits_MatchReference_released_512x512_classifier() => CheckFormulaLogits("released_512x512_classifier");

    private void CheckFormulaLogits(string name, bool checkGenerator = false)
    {
        var clock = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        var json = Reference.Json($"models/full_size/{name}.json");
        var check = json.GetProperty("formula_check");
        var expected = Reference.Tensors($"models/full_size/{name}_formula_logits.safetensors");
        using var model = new EncoderUNet(ReferenceModels.ConfigFromFlags(json.GetProperty("flags")));
        model.eval();
        ReferenceModels.FillFormulaWeights(model, check.GetProperty("salt").GetDouble());
        if (checkGenerator) AssertFormulaWeightsMatch(model, check.GetProperty("per_param_sum_and_first3"));
        var shape = check.GetProperty("input_shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        var x = ReferenceModels.FormulaInput(shape, check.GetProperty("salt").GetDouble());
        if (expected.TryGetValue("x", out var expectedX))
            Reference.AssertClose(x, expectedX, 0, 1e-7, $"{name} formula input");
        long built = clock.ElapsedMilliseconds;
        Tensor logits;
        using (no_grad())
            logits = model.forward(x, expected["timesteps"]);
        output.WriteLine($"{name}: build+fill {built} ms, forward {clock.ElapsedMilliseconds - built} ms");
        Reference.AssertClose(logits, expected["logits"], 0, 1e-5, $"{name} formula logits");
    }

    private static void AssertFormulaWeightsMatch(EncoderUNet model, JsonElement perParam)
    {
        // per_param_sum_and_first3 is stored as a Python repr string in the manifest.
        var text = perParam.ValueKind == JsonValueKind.String ? perParam.GetString()!.Replace('\'', '"') : perParam.GetRawText();
        using var doc = JsonDocument.Parse(text);
        var stateDict = model.state_dict();
        foreach (var row in doc.RootElement.EnumerateArray())
        {
            string key = row[0].GetString()!;
            var values = stateDict[key].Float64();
            Assert.Equal(row[1].GetDouble(), values.Sum(), 1e-6 * Math.Max(1, values.Length / 1000.0));
            var first3 = row[2].EnumerateArray().Select(e => e.GetDouble()).ToArray();
            for (int i = 0; i < first3.Length; i++)
                Assert.Equal(first3[i], values[i], 1e-7);
        }
    }

    private static void AssertOptionsMatch(JsonElement args, EncoderUNetOptions options)
    {
        Assert.Equal(args.GetProperty("model_channels").GetInt32(), options.ModelChannels);
        Assert.Equal(args.GetProperty("out_channels").GetInt32(), options.OutChannels);
        Assert.Equal(args.GetProperty("num_res_blocks").GetInt32(), options.NumResBlocks);
        Assert.Equal(args.GetProperty("attention_resolutions").EnumerateArray().Select(e => e.GetInt32()), options.AttentionResolutions);
        Assert.Equal(args.GetProperty("channel_mult").EnumerateArray().Select(e => e.GetDouble()), options.ChannelMult);
        Assert.Equal(args.GetProperty("num_head_channels").GetInt32(), options.NumHeadChannels);
        Assert.Equal(args.GetProperty("pool").GetString(), options.Pool.ToFlag());
        Assert.Equal(args.GetProperty("use_scale_shift_norm").GetBoolean(), options.UseScaleShiftNorm);
        Assert.Equal(args.GetProperty("resblock_updown").GetBoolean(), options.ResblockUpdown);
        Assert.Equal(args.GetProperty("use_new_attention_order").GetBoolean(), options.UseNewAttentionOrder);
        Assert.Equal(args.GetProperty("num_heads").GetInt32(), options.NumHeads);
        Assert.Equal(args.GetProperty("conv_resample").GetBoolean(), options.ConvResample);
    }
}
