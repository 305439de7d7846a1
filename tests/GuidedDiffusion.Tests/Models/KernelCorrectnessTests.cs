using TorchSharp;
using GuidedDiffusion.Diagnostics;
using GuidedDiffusion.Models;
using GuidedDiffusion.Runtime;
using GuidedDiffusion.Tests.Cli;
using GuidedDiffusion.Tests.Training;
using GuidedDiffusion.Training;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Models;

/// <summary>
/// Issue 24: libtorch 2.10's oneDNN computed wrong input gradients for convolutions with few output channels on some
/// AMD Zen 5 hosts (its padded-block path). These tests do not wait for a host with the defect: the layout test
/// fails wherever the models would hand oneDNN a padded block (every AVX2/AVX-512 host), and the sweep runs every
/// unusual shape of both models against float64 with unwritten memory NaN-filled.
/// </summary>
public class KernelCorrectnessTests
{
    /// <summary>Every unusual convolution shape both models build (the doctor's list plus variants): the classifier at
    /// 10 and 1,000 classes, the UNet with 3 and 6 outputs, 1×1 conv1d of attention and pooling, the 3-channel input.</summary>
    public static TheoryData<int, int, int, int, int, int> Shapes()
    {
        var data = new TheoryData<int, int, int, int, int, int>();
        foreach (var (_, s) in HostReport.Shapes) data.Add(s.Dims, (int)s.InChannels, (int)s.OutChannels, (int)s.KernelSize, (int)s.Stride, (int)s.Padding);
        data.Add(2, 32, 3, 3, 1, 1);     // the small UNet's output (LossParityTests)
        data.Add(2, 32, 6, 3, 1, 1);
        data.Add(2, 256, 3, 3, 1, 1);    // width 256 UNet
        data.Add(2, 512, 1000, 1, 1, 0); // adaptive pool at 1,000 classes
        data.Add(1, 24, 72, 1, 1, 0);    // attention qkv at a width that is not a multiple of 16
        data.Add(2, 24, 24, 3, 2, 1);    // downsample at that width
        data.Add(2, 3, 32, 3, 1, 1);
        data.Add(2, 8, 1, 3, 1, 1);
        return data;
    }

    [Theory, MemberData(nameof(Shapes))]
    public void Sweep_PaddedLayer_MatchesFloat64_ForwardAndBothBackwardPasses(int dims, int cin, int cout, int k, int stride, int padding)
    {
        var shape = new ConvolutionShape(dims, cin, cout, k, stride, padding);
        // Repeated in one process with fresh seeds: a kernel reading unwritten (NaN-filled) memory fails on any run.
        for (int seed = 0; seed < 3; seed++)
        {
            var result = KernelSelfCheck.Check("sweep", shape, aligned: true, seed: seed);
            Assert.True(result.Passed, result.ToString());
        }
    }

    [Theory, MemberData(nameof(Shapes))]
    public void Sweep_PaddedLayerInBf16_MatchesFloat64_WhereBf16IsTheDefault(int dims, int cin, int cout, int k, int stride, int padding)
    {
        // bf16 is the default training precision where oneDNN has native bf16 kernels; elsewhere it runs reference
        // loops that oneDNN's blocked kernels never see.
        if (!CpuFeatures.Current.HasNativeBf16) return;
        var shape = new ConvolutionShape(dims, cin, cout, k, stride, padding);
        var result = KernelSelfCheck.Check("sweep", shape, aligned: true, seed: 0, dtype: ScalarType.BFloat16);
        Assert.True(result.Passed, result.ToString());
    }

    [Fact]
    public void Models_HandOneDnnNoPaddedChannelBlocks()
    {
        var run = CliRunner.Run("doctor", "--raw_probe", "False");
        Assert.True(run.ExitCode == 0, run.Output + run.Error);
        Assert.Contains("oneDNN primitives in the float32 self-check:", run.Output);
        Assert.Contains("with padded channel blocks: 0", run.Output);
    }

    [Fact]
    public void WithThePaddingOff_TheTraceSeesPaddedBlocks()
    {
        // The layout test above can fail: without the padding, the same layers run oneDNN's padded-block kernels on
        // any host with AVX2 or AVX-512 (blocks of 8 or 16 channels).
        if (!CpuFeatures.Current.HasAvx2) return;
        var run = CliRunner.RunWith(new Dictionary<string, string> { ["GUIDED_DIFFUSION_CONV_ALIGN"] = "off" }, "doctor", "--raw_probe", "False");
        Assert.Contains("channel padding (BlockAlignedConv): OFF", run.Output);
        Assert.DoesNotContain("with padded channel blocks: 0", run.Output);
        Assert.Matches(@"with padded channel blocks: [1-9]", run.Output);
    }

    [Fact]
    public void SelfCheck_LeavesTorchsGlobalGeneratorWhereItWas()
    {
        // Jobs run the check between seeding and sampling: it must not shift the random stream they draw from.
        using var scope = NewDisposeScope();
        manual_seed(11);
        var expected = rand(8);
        manual_seed(11);
        KernelSelfCheck.Check("rng", new ConvolutionShape(2, 3, 5, 3, 1, 1));
        Assert.True(rand(8).equal(expected).all().ToBoolean());
    }

    [Fact]
    public void ParseOneDnnLog_CountsPaddedDescriptors()
    {
        const string log = "onednn_verbose,v1,info,oneDNN v3.7.1 (commit x)\n"
            + "onednn_verbose,v1,info,cpu,isa:Intel AVX-512\n"
            + "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx512_core,backward_data,src:f32:a:blocked:aBcd16b::f0 dst:f32:ap:blocked:aBcd16b::f0,,mb4_ic32oc3,0.01\n"
            + "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32::blocked:abcd::f0 dst:f32:p:blocked:aBcd16b::f0,,4x3x8x8,0.01\n"
            + "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx512_core,forward,src:f32:a:blocked:aBcd16b::f0 dst:f32:a:blocked:aBcd16b::f0,,mb4_ic32oc32,0.01\n";
        var (version, isa, primitives, padded) = HostReport.ParseOneDnnLog(log);
        Assert.Equal("v3.7.1 (commit x)", version);
        Assert.Equal("Intel AVX-512", isa);
        Assert.Equal(3, primitives);
        Assert.Equal(2, padded.Count);
    }

    [Fact]
    public void UnusualLayers_AreTheThinOnes_AndTheModelsBuildThemPadded()
    {
        using var unet = new UNetModel(new UNetOptions { ImageSize = 32, InChannels = 3, ModelChannels = 32, OutChannels = 6, NumResBlocks = 1, AttentionResolutions = [2], ChannelMult = [1, 2], NumHeadChannels = 32 });
        var layers = KernelSelfCheck.UnusualLayers(unet).Select(l => l.Layer).ToList();
        Assert.Equal(new[] { "input_blocks.0.0", "out.2" }, layers);
        Assert.IsType<BlockAlignedConv>(unet.named_modules().Single(m => m.name == "out.2").module);
        Assert.Equal(new long[] { 6, 32, 3, 3 }, unet.state_dict()["out.2.weight"].shape);  // the original's shape

        using var classifier = new EncoderUNet(new EncoderUNetOptions { ImageSize = 32, InChannels = 3, ModelChannels = 32, OutChannels = 10, NumResBlocks = 1, AttentionResolutions = [2], ChannelMult = [1, 2], NumHeadChannels = 32, Pool = ClassifierPool.Attention });
        Assert.Contains("out.2.c_proj", KernelSelfCheck.UnusualLayers(classifier).Select(l => l.Layer));
        Assert.Equal(new long[] { 10, 64, 1 }, classifier.state_dict()["out.2.c_proj.weight"].shape);
    }

    [Fact]
    public void PaddedConv_EqualsThePlainConvolution_WithTheSameWeights()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var padded = new BlockAlignedConv(2, 3, 5, 3, 1, 1);
        var x = randn(2, 3, 9, 9).requires_grad_(true);
        var y = padded.forward(x);
        Assert.Equal(new long[] { 2, 5, 9, 9 }, y.shape);
        var plain = nn.functional.conv2d(x.to(ScalarType.Float64), padded.weight.to(ScalarType.Float64), padded.bias!.to(ScalarType.Float64), padding: [1, 1]);
        Assert.True((y.to(ScalarType.Float64) - plain).abs().max().ToDouble() < 1e-5);
    }

    [Fact]
    public void NonFiniteGradient_StopsTraining_BeforeAnyCheckpoint()
    {
        var train = TrainingFixtures.ImageFolder(classes: 2, perClass: 4, size: 64);
        var log = Path.Combine(Path.GetTempPath(), "gd-nan-" + Guid.NewGuid().ToString("N"));
        // An absurd learning rate: AdamW moves every weight by ~1e30 on step 0, so step 1's loss and gradients overflow.
        var config = TrainingFixtures.ShortRun(train, train, log, iterations: 4);
        config = config with { Optimizer = config.Optimizer with { Lr = 1e30 }, Checkpoints = config.Checkpoints with { LogInterval = 1, SaveInterval = 1 } };
        var e = Assert.Throws<NonFiniteTrainingException>(() => new ClassifierTrainingJob(config, TrainingFixtures.SmallClassifier(null), TrainingFixtures.Diffusion).Run());
        Assert.True(e.Step >= 1, e.Message);
        Assert.Contains($"step {e.Step}: grad_norm is", e.Message);
        Assert.Contains("guided-diffusion doctor", e.Message);
        // Every checkpoint on disk predates the non-finite step, and none holds a non-finite value.
        foreach (var file in Directory.GetFiles(log, "model*.pt"))
        {
            int step = int.Parse(Path.GetFileNameWithoutExtension(file)["model".Length..], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(step < e.Step, $"{file} written at or after the non-finite step {e.Step}");
            var stateDict = GuidedDiffusion.Checkpoints.StateDictIO.Read(file);
            Assert.All(stateDict.Values, t => Assert.True(t.isfinite().all().ToBoolean(), $"{file} holds a non-finite value"));
        }
    }
}
