using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Models;

/// <summary>Half-precision trunks: which weights convert (as the original's convert_to_fp16), and the dtype flow.</summary>
public class PrecisionTests
{
    private const string CaseName = "enc64_attention_ss_updown";

    [Theory]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    public void ConvertTrunkTo_ConvertsOnlyTrunkConvolutions(ScalarType dtype)
    {
        using var model = ReferenceModels.LoadSmallCase(CaseName);
        model.ConvertTrunkTo(dtype);
        Assert.Equal(dtype, model.TrunkDtype);
        foreach (var (name, parameter) in model.named_parameters())
        {
            bool trunk = name.StartsWith("input_blocks.", StringComparison.Ordinal) || name.StartsWith("middle_block.", StringComparison.Ordinal);
            bool conv = trunk && !name.Contains("emb_layers", StringComparison.Ordinal) && !name.Contains("norm", StringComparison.Ordinal)
                && !name.Contains("in_layers.0.", StringComparison.Ordinal) && !name.Contains("out_layers.0.", StringComparison.Ordinal);
            Assert.True(parameter.dtype == (conv ? dtype : ScalarType.Float32), $"{name} is {parameter.dtype}");
        }
        model.ConvertToFp32();
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
    }

    [Fact]
    public void Bf16Trunk_GivesFloat32LogitsCloseToFloat32_AndTrainsThroughBackward()
    {
        using var scope = NewDisposeScope();
        var expected = Reference.Tensors($"models/{CaseName}/case.safetensors");
        using var model = ReferenceModels.LoadSmallCase(CaseName);
        model.ConvertTrunkTo(ScalarType.BFloat16);
        var logits = model.forward(expected["x"], expected["timesteps"]);
        Assert.Equal(ScalarType.Float32, logits.dtype);
        // bf16 keeps 8 bits of mantissa: logits move by ~1e-2 at most on this small model.
        Reference.AssertClose(logits, expected["logits"], 0, 0.05, "bf16 logits");
        nn.functional.cross_entropy(logits, expected["labels"]).backward();
        var stem = model.InputBlocks[0].Layers[0] as Convolution;
        Assert.NotNull(stem);
        Assert.Equal(ScalarType.BFloat16, stem!.weight!.grad!.dtype);
    }

    [Fact]
    public void Load_Float32CheckpointIntoBf16Trunk_ConvertsValues()
    {
        using var scope = NewDisposeScope();
        using var model = new EncoderUNet(ReferenceModels.OptionsFrom(ReferenceModels.CaseJson(CaseName).GetProperty("constructor_args")));
        model.ConvertTrunkTo(ScalarType.BFloat16);
        StateDictIO.Load(model, Reference.PathOf($"models/{CaseName}/state_dict.safetensors"));
        var expected = Reference.Tensors($"models/{CaseName}/state_dict.safetensors");
        var stem = model.state_dict()["input_blocks.0.0.weight"];
        Assert.Equal(ScalarType.BFloat16, stem.dtype);
        Reference.AssertClose(stem, expected["input_blocks.0.0.weight"], 1e-2, 1e-6, "bf16 stem");
        Assert.All(model.parameters(), p => Assert.True(p.requires_grad));
    }
}
