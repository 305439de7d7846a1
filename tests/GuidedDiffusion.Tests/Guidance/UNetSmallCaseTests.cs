using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Models;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Guidance;

/// <summary>
/// The small diffusion UNets under Reference/guidance/unet: state-dict keys and shapes, outputs and intermediate
/// activations against the original's UNetModel (float32 CPU).
/// </summary>
public class UNetSmallCaseTests
{
    [Theory]
    [InlineData(GuidanceReference.CondUNet)]
    [InlineData(GuidanceReference.UncondUNet)]
    public void StateDictKeys_MatchReference(string name)
    {
        var json = GuidanceReference.UNetCase(name);
        using var model = new UNetModel(GuidanceReference.OptionsFrom(json.GetProperty("create_model_passes")));
        var expected = ReferenceModels.Manifest(json);
        var actual = model.state_dict().ToList();
        Assert.Equal(json.GetProperty("num_state_dict_entries").GetInt32(), actual.Count);
        Assert.Equal(expected.Select(e => e.Key), actual.Select(a => a.Key));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.True(expected[i].Shape.SequenceEqual(actual[i].Value.shape),
                $"{expected[i].Key}: expected [{string.Join(", ", expected[i].Shape)}], got [{string.Join(", ", actual[i].Value.shape)}]");
            Assert.Equal(ScalarType.Float32, actual[i].Value.dtype);
        }
        Assert.Equal(json.GetProperty("num_parameters").GetInt64(), model.parameters().Sum(p => p.numel()));
    }

    [Theory]
    [InlineData(GuidanceReference.CondUNet)]
    [InlineData(GuidanceReference.UncondUNet)]
    public void ConfigFromFlags_PassesWhatCreateModelPasses(string name)
    {
        var json = GuidanceReference.UNetCase(name);
        var options = GuidanceReference.ConfigFromFlags(json.GetProperty("flags")).ToOptions();
        var expected = GuidanceReference.OptionsFrom(json.GetProperty("create_model_passes"));
        Assert.Equal(expected.AttentionResolutions, options.AttentionResolutions);
        Assert.Equal(expected.ChannelMult, options.ChannelMult);
        Assert.Equal(expected with { AttentionResolutions = options.AttentionResolutions, ChannelMult = options.ChannelMult }, options);
    }

    [Theory]
    [InlineData(GuidanceReference.CondUNet)]
    [InlineData(GuidanceReference.UncondUNet)]
    public void OutputAndActivations_MatchReference(string name)
    {
        using var scope = NewDisposeScope();
        using var model = GuidanceReference.LoadUNet(name);
        var expected = Reference.Tensors($"guidance/unet/{name}/case.safetensors");
        var activations = new Dictionary<string, Tensor>();
        Tensor output;
        using (no_grad())
        {
            output = model.ForwardWithActivations(expected["x"], expected["timesteps"], expected.GetValueOrDefault("y"),
                (key, value) => activations[key] = value);
        }
        GuidanceReference.AssertCloseScaled(output, expected["output"], 1e-5, $"{name} output");
        GuidanceReference.AssertCloseScaled(output[.., ..3], expected["eps"], 1e-5, $"{name} eps");
        GuidanceReference.AssertCloseScaled(output[.., 3..], expected["var_values"], 1e-5, $"{name} var_values");

        GuidanceReference.AssertCloseScaled(activations["time_embed"], expected["act/time_embed_out"], 1e-5, "time_embed_out");
        GuidanceReference.AssertCloseScaled(activations["middle_block"], expected["act/middle_block_out"], 1e-5, "middle_block_out");
        int inputs = 0, outputs = 0;
        foreach (var key in expected.Keys.Where(k => k.StartsWith("act/input_block_", StringComparison.Ordinal)))
        {
            int index = int.Parse(key.Split('_')[2]);
            GuidanceReference.AssertCloseScaled(activations[$"input_blocks.{index}"].mean(new long[] { 2, 3 }), expected[key], 1e-5, key);
            inputs++;
        }
        foreach (var key in expected.Keys.Where(k => k.StartsWith("act/output_block_", StringComparison.Ordinal)))
        {
            int index = int.Parse(key.Split('_')[2]);
            GuidanceReference.AssertCloseScaled(activations[$"output_blocks.{index}"].mean(new long[] { 2, 3 }), expected[key], 1e-5, key);
            outputs++;
        }
        Assert.True(inputs > 0 && outputs > 0, "the case lists block activations");
    }

    [Fact]
    public void StateDictPt_LoadsLikeSafetensors()
    {
        using var scope = NewDisposeScope();
        using var fromSafetensors = GuidanceReference.LoadUNet(GuidanceReference.CondUNet);
        using var fromPt = new UNetModel(fromSafetensors.Options);
        StateDictIO.Load(fromPt, Reference.PathOf($"guidance/unet/{GuidanceReference.CondUNet}/state_dict.pt"));
        var a = fromSafetensors.state_dict();
        foreach (var (key, value) in fromPt.state_dict())
            Assert.True(value.equal(a[key]).all().item<bool>(), key);
    }

    [Fact]
    public void ClassConditionalModel_RequiresLabels_AndUnconditionalRejectsThem()
    {
        using var scope = NewDisposeScope();
        using var cond = GuidanceReference.LoadUNet(GuidanceReference.CondUNet);
        var x = zeros(1, 3, 16, 16);
        var t = tensor(new long[] { 5 });
        Assert.Throws<ArgumentException>(() => cond.forward(x, t, null));
        var options = cond.Options with { NumClasses = null };
        using var uncond = new UNetModel(options);
        Assert.Throws<ArgumentException>(() => uncond.forward(x, t, tensor(new long[] { 1 })));
        Assert.DoesNotContain(uncond.state_dict().Keys, k => k.StartsWith("label_emb", StringComparison.Ordinal));
    }
}
