using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Guidance;

/// <summary>
/// Sampler behaviour the reference files do not cover: fixed variances, x₀ prediction, the loops' order of
/// steps and noise draws, and configuration errors.
/// </summary>
public class SamplerBehaviourTests
{
    [Fact]
    public void FixedLargeVariance_IsBetas_WithPosteriorVarianceAtStepZero()
    {
        using var scope = NewDisposeScope();
        var sampler = ReverseProcess.For(new DiffusionConfig { TimestepRespacing = "10" });
        Assert.Equal(ModelVarianceType.FixedLarge, sampler.VarianceType);
        var d = sampler.Diffusion;
        var x = zeros(2, 3, 4, 4);
        var pmv = sampler.PMeanVariance((xs, _, _) => zeros_like(xs), x, tensor(new long[] { 0, 7 }), null);
        Assert.Equal((float)d.PosteriorVariance[1], pmv.Variance[0].flatten()[0].ToSingle());
        Assert.Equal((float)d.Betas[7], pmv.Variance[1].flatten()[0].ToSingle());
        Assert.Equal((float)Math.Log(d.Betas[7]), pmv.LogVariance[1].flatten()[0].ToSingle());
        Assert.Equal(x.shape, pmv.Variance.shape);
    }

    [Fact]
    public void FixedSmallVariance_IsThePosteriorVariance_WithClippedLog()
    {
        using var scope = NewDisposeScope();
        var d = new DiffusionConfig { TimestepRespacing = "10" }.Build();
        var sampler = new ReverseProcess(d, ModelVarianceType.FixedSmall);
        var pmv = sampler.PMeanVariance((xs, _, _) => zeros_like(xs), zeros(2, 3, 4, 4), tensor(new long[] { 0, 7 }), null);
        Assert.Equal(0f, pmv.Variance[0].flatten()[0].ToSingle());
        Assert.Equal((float)d.PosteriorLogVarianceClipped[0], pmv.LogVariance[0].flatten()[0].ToSingle());
        Assert.Equal((float)d.PosteriorVariance[7], pmv.Variance[1].flatten()[0].ToSingle());
    }

    [Fact]
    public void StartXPrediction_UsesTheModelOutputAsX0_Clipped()
    {
        using var scope = NewDisposeScope();
        var sampler = ReverseProcess.For(new DiffusionConfig { TimestepRespacing = "10", PredictXstart = true });
        Assert.Equal(ModelMeanType.StartX, sampler.MeanType);
        var x = randn(2, 3, 4, 4);
        var t = tensor(new long[] { 3, 9 });
        var pmv = sampler.PMeanVariance((xs, _, _) => full_like(xs, 2.5), x, t, null);
        Assert.True(pmv.PredXstart.eq(1).all().item<bool>());
        Reference.AssertClose(pmv.Mean, sampler.QPosteriorMean(ones_like(x), x, t), 1e-6, 1e-7, "mean from clipped x0");
    }

    [Fact]
    public void WrongOutputChannels_AreReportedWithTheFlagToFix()
    {
        using var scope = NewDisposeScope();
        var sampler = ReverseProcess.For(new DiffusionConfig { LearnSigma = true });
        var error = Assert.Throws<ArgumentException>(() =>
            sampler.PMeanVariance((xs, _, _) => zeros_like(xs), zeros(1, 3, 4, 4), tensor(new long[] { 3 }), null));
        Assert.Contains("learn_sigma", error.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Loops_VisitEverySpacedStepDownToZero_AndEqualRepeatedSingleSteps(bool ddim)
    {
        using var scope = NewDisposeScope();
        var sampler = ReverseProcess.For(new DiffusionConfig { TimestepRespacing = "5", LearnSigma = true });
        var seen = new List<long>();
        DenoiserFn model = (xs, ts, _) =>
        {
            seen.Add(ts[0].ToInt64());
            return cat(new[] { xs * 0.3, full_like(xs, 0.2) }, dim: 1);
        };
        var shape = new long[] { 2, 3, 4, 4 };
        var loop = ddim
            ? sampler.DdimSampleLoop(model, shape, null, Noise.From(new Generator(11)), eta: 0.5)
            : sampler.PSampleLoop(model, shape, null, Noise.From(new Generator(11)));
        Assert.Equal(sampler.Diffusion.TimestepMap.Reverse().Select(v => (long)v), seen);

        var noise = Noise.From(new Generator(11));
        var x = noise(empty(shape));
        for (int i = 4; i >= 0; i--)
        {
            var t = full(new long[] { 2 }, i, dtype: ScalarType.Int64);
            x = ddim ? sampler.DdimSample(model, x, t, null, noise, eta: 0.5).Sample : sampler.PSample(model, x, t, null, noise).Sample;
        }
        Reference.AssertClose(loop, x, 0, 0, "loop vs steps");
    }

    [Fact]
    public void Guidance_NeedsLabels()
    {
        using var scope = NewDisposeScope();
        var guidance = new ClassifierGuidance(GuidanceReference.LoadClassifier(), 1.0);
        Assert.Throws<ArgumentNullException>(() => guidance.Gradient(zeros(1, 3, 16, 16), tensor(new long[] { 5 }), null));
    }

    [Fact]
    public void GuidedSampler_RejectsAModelWhoseOutputsDoNotFitLearnSigma()
    {
        using var scope = NewDisposeScope();
        using var unet = GuidanceReference.LoadUNet(GuidanceReference.CondUNet);
        var error = Assert.Throws<ConfigurationException>(() =>
            new GuidedSampler(unet, ReverseProcess.For(new DiffusionConfig { LearnSigma = false }), null));
        Assert.Equal("learn_sigma", error.Setting);
    }

    [Fact]
    public void ToUInt8Nhwc_ScalesClampsAndTruncatesLikeTheScript()
    {
        using var scope = NewDisposeScope();
        var sample = tensor(new float[] { -2f, -1f, 0f, 0.999f, 1f, 3f }).reshape(1, 6, 1, 1);
        var pixels = GuidedSampler.ToUInt8Nhwc(sample);
        Assert.Equal(new long[] { 1, 1, 1, 6 }, pixels.shape);
        Assert.Equal(new byte[] { 0, 0, 127, 254, 255, 255 }, pixels.data<byte>().ToArray());
    }

    [Theory]
    [InlineData(48, "", "channel_mult")]
    [InlineData(64, "1,2,3,4", "attention_resolutions", "5")]
    [InlineData(64, "1,2,x", "channel_mult")]
    public void DiffusionModelConfig_NamesTheBadFlag(int imageSize, string channelMult, string flag, string attention = "16,8")
    {
        // As the command line spells them: a list that does not parse is refused there, one that parses when the model is built.
        var error = Assert.Throws<ConfigurationException>(() => new DiffusionModelConfig
        {
            ImageSize = imageSize,
            ChannelMult = channelMult == "" ? null : SettingList<double>.Parse(channelMult, "channel_mult"),
            AttentionResolutions = SettingList<int>.Parse(attention, "attention_resolutions"),
        }.ToOptions());
        Assert.Equal(flag, error.Setting);
    }

    [Fact]
    public void DiffusionModelConfig_Defaults_AreModelAndDiffusionDefaults()
    {
        var options = new DiffusionModelConfig().ToOptions();
        Assert.Equal(128, options.ModelChannels);
        Assert.Equal(2, options.NumResBlocks);
        Assert.Equal(new[] { 4, 8 }, options.AttentionResolutions);
        Assert.Equal(new double[] { 1, 2, 3, 4 }, options.ChannelMult);
        Assert.Equal(3, options.OutChannels);
        Assert.Null(options.NumClasses);
        Assert.Equal(4, options.NumHeads);
        Assert.True(options.UseScaleShiftNorm);
        Assert.Equal(6, (new DiffusionModelConfig { LearnSigma = true }).ToOptions().OutChannels);
        Assert.Equal(1000, (new DiffusionModelConfig { ClassCond = true }).ToOptions().NumClasses);
    }

    [Fact]
    public void BFloat16Trunk_StaysCloseToFloat32()
    {
        using var scope = NewDisposeScope();
        using var model = GuidanceReference.LoadUNet(GuidanceReference.CondUNet);
        var expected = Reference.Tensors($"guidance/unet/{GuidanceReference.CondUNet}/case.safetensors");
        model.ConvertTrunkTo(ScalarType.BFloat16);
        Tensor output;
        using (no_grad()) output = model.forward(expected["x"], expected["timesteps"], expected["y"]);
        Assert.Equal(ScalarType.Float32, output.dtype);
        Reference.AssertClose(output, expected["output"], 0, 0.05, "bf16 trunk output");
    }
}
