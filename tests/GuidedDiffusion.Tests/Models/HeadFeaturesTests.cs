using GuidedDiffusion.Models;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Models;

/// <summary>
/// <see cref="EncoderUNet.ForwardWithFeatures"/>: the penultimate features are the input of the head's last linear
/// map, for every pool. The logits of the same pass are recomputed from the features with the checkpoint's own
/// output weights (the original's state-dict keys), which holds only for that layer's input.
/// </summary>
public sealed class HeadFeaturesTests
{
    [Theory]
    // The last linear map of each head and its input: adaptive's 1×1 conv after the average pool, the attention
    // pool's c_proj after attention (mean token), the spatial heads' second Linear after the activation.
    [InlineData(ClassifierPool.Adaptive, "out.3", 64)]
    [InlineData(ClassifierPool.Attention, "out.2.c_proj", 64)]
    [InlineData(ClassifierPool.Spatial, "out.2", 2048)]
    [InlineData(ClassifierPool.SpatialV2, "out.3", 2048)]
    public void Features_AreTheInputOfTheLastLinearLayer(ClassifierPool pool, string lastLayer, int width)
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var options = new ClassifierConfig { ImageSize = 16, Width = 32, Depth = 1, ChannelMult = [1, 2], AttentionResolutions = [8], NumHeadChannels = 32, NumClasses = 5 }
            .ToOptions() with
        { Pool = pool };
        using var model = new EncoderUNet(options);
        model.eval();
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using (no_grad())
        {
            // The adaptive head's output conv is zero-initialised (logits = bias); give it weights.
            parameters[$"{lastLayer}.weight"].normal_();
            parameters[$"{lastLayer}.bias"].normal_();
        }
        Assert.Equal(width, model.HeadFeatureWidth);

        using var noGrad = no_grad();
        var x = randn(4, 3, 16, 16);
        var t = tensor(new long[] { 0, 10, 500, 999 });
        var (logits, features) = model.ForwardWithFeatures(x, t);
        Assert.Equal(new long[] { 4, width }, features.shape);
        Assert.Equal(model.forward(x, t).data<float>().ToArray(), logits.data<float>().ToArray()); // the same pass as forward

        var weight = parameters[$"{lastLayer}.weight"].reshape(5, width);
        var recomputed = features.matmul(weight.t()) + parameters[$"{lastLayer}.bias"];
        Assert.True(recomputed.allclose(logits, rtol: 1e-4, atol: 1e-5),
            $"{pool}: logits differ from the last layer applied to the features by {(recomputed - logits).abs().max().item<float>()}");
    }
}
