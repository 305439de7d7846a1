using GuidedDiffusion.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Models;

/// <summary>
/// Gradient checkpointing (use_checkpoint / classifier_use_checkpoint): a checkpointed model computes the same
/// outputs and the same parameter and input gradients as the plain one — bit for bit, dropout in training mode
/// included — and really does recompute its blocks in the backward.
/// </summary>
/// <remarks>
/// The recomputation runs the same kernels on the same inputs (and, with the saved generator state, the same dropout
/// mask), so every activation, and the output, is the same float32 number: asserted exactly. A gradient can differ
/// only where the autograd engine adds the contributions of several uses of one tensor in another order: x + y is
/// exact-commutative in IEEE arithmetic, so this needs three or more uses. In the classifier no activation has more
/// than two (a block's input feeds its first layer and its skip path), and its gradients are asserted bit for bit.
/// In the diffusion UNet every encoder activation has three (the next block's first layer and skip, and the
/// decoder's concatenation), and the checkpointed backward adds the first two before the third: each such sum
/// changes by at most 2ε of its terms' magnitude (ε = 2⁻²⁴) and the change then passes through the remaining
/// backward layers, each adding its own rounding and scaled by a Jacobian of order one (normalised, residual
/// blocks), about ten of them here. So the bound is a small multiple of ε times the gradients' scale G (the largest
/// gradient element): 64·ε·G, where 12·ε·G was measured. Any real fault (another dropout mask, a missed parameter)
/// changes gradients by the order of G itself.
/// </remarks>
public class GradientCheckpointTests
{
    private static EncoderUNetOptions SmallClassifier(bool checkpoint, double dropout) => new()
    {
        ImageSize = 16,
        InChannels = 3,
        ModelChannels = 32,
        OutChannels = 5,
        NumResBlocks = 1,
        AttentionResolutions = [2],
        ChannelMult = [1, 2],
        NumHeadChannels = 32,
        UseScaleShiftNorm = true,
        ResblockUpdown = true,
        Pool = ClassifierPool.Attention,
        Dropout = dropout,
        UseCheckpoint = checkpoint,
    };

    private static UNetOptions SmallUNet(bool checkpoint, double dropout) => new()
    {
        ImageSize = 16,
        InChannels = 3,
        ModelChannels = 32,
        OutChannels = 6,
        NumResBlocks = 1,
        AttentionResolutions = [2],
        ChannelMult = [1, 2],
        NumHeadChannels = 16,
        NumClasses = 4,
        UseScaleShiftNorm = true,
        ResblockUpdown = true,
        Dropout = dropout,
        UseCheckpoint = checkpoint,
    };

    /// <summary>One forward and backward: the output, every parameter's gradient, the input's gradient, the next
    /// number the generator draws, and how many blocks the graph recorded and the backward recomputed.</summary>
    private sealed record Pass(Tensor Output, Dictionary<string, Tensor> Gradients, Tensor InputGradient, Tensor NextDraw,
        long RecordedBlocks, long Recomputed);

    private static Pass Run(nn.Module model, Func<Tensor, Tensor> forward, long[] inputShape, bool train)
    {
        manual_seed(5);
        // The zero-initialised output convolutions would hide the dropout mask and most gradients: perturb them all.
        using (no_grad())
        {
            foreach (var p in model.parameters()) p.add_(randn_like(p) * 0.05);
        }
        manual_seed(7);
        var x = randn(inputShape).requires_grad_(true);
        if (train) model.train(); else model.eval();
        manual_seed(11);
        long recordedBefore = GradientCheckpoint.RecordedNodes, recomputedBefore = GradientCheckpoint.Recomputations;
        var output = forward(x);
        var weights = linspace(-1, 1, output.numel()).reshape(output.shape);
        (output * weights).sum().backward();
        var gradients = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        return new Pass(output.detach(), gradients, x.grad!.clone(), rand(4),
            GradientCheckpoint.RecordedNodes - recordedBefore, GradientCheckpoint.Recomputations - recomputedBefore);
    }

    private static Pass RunClassifier(bool checkpoint, double dropout, bool train = true)
    {
        manual_seed(3);
        var model = new EncoderUNet(SmallClassifier(checkpoint, dropout));
        var t = tensor(new long[] { 0, 250, 500, 999 });
        return Run(model, x => model.forward(x, t), [4, 3, 16, 16], train);
    }

    private static Pass RunUNet(bool checkpoint, double dropout, bool train = true)
    {
        manual_seed(3);
        var model = new UNetModel(SmallUNet(checkpoint, dropout));
        var t = tensor(new long[] { 0, 250, 500, 999 });
        var y = tensor(new long[] { 0, 1, 2, 3 });
        return Run(model, x => model.forward(x, t, y), [4, 3, 16, 16], train);
    }

    /// <summary>Same shape and every element equal (Tensor.equal is element-wise in TorchSharp).</summary>
    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.equal(b).all().item<bool>();

    /// <summary>float32's unit roundoff, 2⁻²⁴.</summary>
    private const double Float32Epsilon = 5.9604644775390625e-8;

    /// <summary>
    /// Asserts that the checkpointed pass equals the plain one: outputs and the random stream exactly, gradients
    /// exactly (<paramref name="bitIdentical"/>) or within 64·ε·G, G the largest gradient element of the pass.
    /// </summary>
    private static void AssertSame(Pass plain, Pass checkpointed, bool bitIdentical)
    {
        Assert.True(Same(plain.Output, checkpointed.Output), "outputs differ");
        Assert.Equal(plain.Gradients.Keys, checkpointed.Gradients.Keys);
        var all = plain.Gradients.Append(new("input", plain.InputGradient)).ToList();
        double scale = all.Max(kv => kv.Value.abs().max().item<float>());
        double tolerance = bitIdentical ? 0 : 64 * Float32Epsilon * scale;
        var different = all
            .Select(kv => (kv.Key, Diff: (kv.Value - (kv.Key == "input" ? checkpointed.InputGradient : checkpointed.Gradients[kv.Key])).abs().max().item<float>()))
            .Where(d => !(d.Diff <= tolerance))
            .Select(d => $"{d.Key} (max |diff| {d.Diff:g3} = {d.Diff / (Float32Epsilon * scale):0.#}·ε·G)")
            .ToList();
        Assert.True(different.Count == 0, $"gradients differ beyond {tolerance:g3} (G = {scale:g3}): " + string.Join(", ", different));
        // The dropout generator is where it would be without checkpointing: the rest of training draws the same t and noise.
        Assert.True(Same(plain.NextDraw, checkpointed.NextDraw), "the random stream after the step differs");
    }

    [Fact]
    public void EncoderUNet_Checkpointed_GivesBitIdenticalLogitsAndGradients()
    {
        using var scope = NewDisposeScope();
        AssertSame(RunClassifier(false, 0), RunClassifier(true, 0), bitIdentical: true);
    }

    [Fact]
    public void EncoderUNet_Checkpointed_WithDropoutInTraining_RecomputesTheSameMask()
    {
        using var scope = NewDisposeScope();
        var plain = RunClassifier(false, 0.3);
        var checkpointed = RunClassifier(true, 0.3);
        // Dropout is really active: without it the logits differ.
        Assert.False(Same(plain.Output, RunClassifier(false, 0, train: true).Output));
        AssertSame(plain, checkpointed, bitIdentical: true);
    }

    [Fact]
    public void UNetModel_Checkpointed_GivesBitIdenticalOutputsAndGradients()
    {
        using var scope = NewDisposeScope();
        AssertSame(RunUNet(false, 0), RunUNet(true, 0), bitIdentical: false);
    }

    [Fact]
    public void UNetModel_Checkpointed_WithDropoutInTraining_RecomputesTheSameMask()
    {
        using var scope = NewDisposeScope();
        AssertSame(RunUNet(false, 0.3), RunUNet(true, 0.3), bitIdentical: false);
    }

    [Fact]
    public void Checkpointing_RecordsEveryResBlockAndAttentionBlock_AndRecomputesEachOnceInTheBackward()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var classifier = new EncoderUNet(SmallClassifier(true, 0));
        long classifierBlocks = classifier.modules().Count(m => m is ResBlock or AttentionBlock);
        manual_seed(3);
        using var unet = new UNetModel(SmallUNet(true, 0));
        long unetBlocks = unet.modules().Count(m => m is ResBlock or AttentionBlock);

        var plain = RunClassifier(false, 0);
        Assert.Equal(0, plain.RecordedBlocks);
        Assert.Equal(0, plain.Recomputed);
        var checkpointed = RunClassifier(true, 0);
        Assert.Equal(classifierBlocks, checkpointed.RecordedBlocks);
        Assert.Equal(classifierBlocks, checkpointed.Recomputed);
        Assert.True(classifierBlocks >= 6, $"the small classifier has {classifierBlocks} blocks");

        var unetPass = RunUNet(true, 0);
        Assert.Equal(unetBlocks, unetPass.RecordedBlocks);
        Assert.Equal(unetBlocks, unetPass.Recomputed);
    }

    [Fact]
    public void Checkpointing_IsSkippedWithoutAutograd_AndChangesNoStateDictKey()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var plain = new EncoderUNet(SmallClassifier(false, 0));
        manual_seed(3);
        using var checkpointed = new EncoderUNet(SmallClassifier(true, 0));
        Assert.Equal(plain.state_dict().Keys, checkpointed.state_dict().Keys);

        var x = randn(2, 3, 16, 16);
        var t = tensor(new long[] { 5, 900 });
        long before = GradientCheckpoint.RecordedNodes;
        using (no_grad())
        {
            plain.eval();
            checkpointed.eval();
            Assert.True(Same(plain.forward(x, t), checkpointed.forward(x, t)));
        }
        Assert.Equal(before, GradientCheckpoint.RecordedNodes);
    }

    [Fact]
    public void Checkpointing_WithFrozenParameters_StillGivesTheInputGradient()
    {
        // Guidance and attacks differentiate a frozen classifier with respect to its input only.
        using var scope = NewDisposeScope();
        Tensor InputGradient(bool checkpoint)
        {
            manual_seed(3);
            var model = new EncoderUNet(SmallClassifier(checkpoint, 0));
            model.eval();
            foreach (var p in model.parameters()) p.requires_grad_(false);
            manual_seed(7);
            var x = randn(2, 3, 16, 16).requires_grad_(true);
            model.forward(x, tensor(new long[] { 10, 700 })).log_softmax(-1)[.., 1].sum().backward();
            Assert.All(model.parameters(), p => Assert.Null(p.grad));
            return x.grad!.clone();
        }
        Assert.True(Same(InputGradient(false), InputGradient(true)));
    }
}
