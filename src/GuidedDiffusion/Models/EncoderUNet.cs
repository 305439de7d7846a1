using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>
/// The noise-aware classifier: the original's <c>EncoderUNetModel</c> (the down half of the diffusion UNet plus a
/// pooling head). <c>forward(x, t)</c> maps images [B, C, H, W] and timesteps [B] to logits [B, classes]. The module
/// tree, state-dict keys, their order and shapes equal the original's, so its checkpoints load unchanged.
/// </summary>
public sealed class EncoderUNet : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> timeEmbed;
    private readonly ModuleList<TimestepEmbedSequential> inputBlocks;
    private readonly TimestepEmbedSequential[] inputBlockArray;
    private readonly TimestepEmbedSequential middleBlock;
    private readonly nn.Module<Tensor, Tensor> outHead;
    private readonly nn.Module<Tensor, Tensor>[] headLayers;
    private readonly int featureLayer;

    /// <summary>Builds the classifier the flags describe (like <c>create_classifier</c>).</summary>
    /// <param name="config">The architecture flags; validated first.</param>
    public EncoderUNet(ClassifierConfig config) : this(config.ToOptions()) { }

    /// <summary>Builds the classifier from the original constructor's arguments.</summary>
    /// <param name="options">The <c>EncoderUNetModel</c> arguments; validated first.</param>
    public EncoderUNet(EncoderUNetOptions options) : base(nameof(EncoderUNet))
    {
        options.Validate();
        Options = options;
        int modelChannels = options.ModelChannels;
        int timeEmbedDim = modelChannels * 4;
        timeEmbed = nn.Sequential(nn.Linear(modelChannels, timeEmbedDim), nn.SiLU(), nn.Linear(timeEmbedDim, timeEmbedDim));

        int ch = options.LevelChannels(0);
        var blocks = new List<TimestepEmbedSequential>
        {
            new(Conv.Nd2(options.InChannels, ch, 3, padding: 1)),
        };
        int featureSize = ch;
        int ds = 1;
        for (int level = 0; level < options.ChannelMult.Count; level++)
        {
            for (int i = 0; i < options.NumResBlocks; i++)
            {
                int outCh = options.LevelChannels(level);
                var layers = new List<nn.Module>
                {
                    new ResBlock(ch, timeEmbedDim, options.Dropout, outCh, options.UseScaleShiftNorm, useCheckpoint: options.UseCheckpoint),
                };
                ch = outCh;
                if (options.AttentionResolutions.Contains(ds))
                    layers.Add(NewAttentionBlock(ch, options));
                blocks.Add(new TimestepEmbedSequential(layers.ToArray()));
                featureSize += ch;
            }
            if (level != options.ChannelMult.Count - 1)
            {
                blocks.Add(new TimestepEmbedSequential(options.ResblockUpdown
                    ? new ResBlock(ch, timeEmbedDim, options.Dropout, ch, options.UseScaleShiftNorm, down: true, useCheckpoint: options.UseCheckpoint)
                    : new Downsample(ch, options.ConvResample, ch)));
                ds *= 2;
                featureSize += ch;
            }
        }
        inputBlockArray = blocks.ToArray();
        inputBlocks = nn.ModuleList(inputBlockArray);

        middleBlock = new TimestepEmbedSequential(
            new ResBlock(ch, timeEmbedDim, options.Dropout, useScaleShiftNorm: options.UseScaleShiftNorm, useCheckpoint: options.UseCheckpoint),
            NewAttentionBlock(ch, options),
            new ResBlock(ch, timeEmbedDim, options.Dropout, useScaleShiftNorm: options.UseScaleShiftNorm, useCheckpoint: options.UseCheckpoint));
        featureSize += ch;
        FeatureSize = featureSize;

        (headLayers, featureLayer) = ClassifierHead.Create(options, ch, featureSize, options.ImageSize / ds);
        outHead = nn.Sequential(headLayers);
        HeadFeatureWidth = ClassifierHead.FeatureWidth(options.Pool, ch);

        register_module("time_embed", timeEmbed);
        register_module("input_blocks", inputBlocks);
        register_module("middle_block", middleBlock);
        register_module("out", outHead);
    }

    /// <summary>The constructor arguments this model was built from.</summary>
    public EncoderUNetOptions Options { get; }

    /// <summary>Width of the concatenated spatial means the spatial heads see (the original's <c>_feature_size</c>).</summary>
    public int FeatureSize { get; }

    /// <summary>The name under which <see cref="ForwardWithActivations"/> reports the penultimate features.</summary>
    public const string FeaturesActivation = "features";

    /// <summary>Width of the penultimate features (<see cref="ForwardWithFeatures"/>): the middle block's channels
    /// for the adaptive and attention heads, 2048 for the spatial ones.</summary>
    public int HeadFeatureWidth { get; }

    /// <summary>The dtype of the trunk (input_blocks and middle_block convolutions): float32 unless converted by
    /// <see cref="ConvertTrunkTo"/>. The input is cast to it, and the features back to float32 before the head.</summary>
    public ScalarType TrunkDtype { get; private set; } = ScalarType.Float32;

    /// <summary>The trunk blocks in order: the stem conv, then ResBlocks (+ attention) and downsamplers.</summary>
    public IReadOnlyList<TimestepEmbedSequential> InputBlocks => inputBlockArray;

    /// <summary>ResBlock, AttentionBlock, ResBlock at the lowest resolution.</summary>
    public TimestepEmbedSequential MiddleBlock => middleBlock;

    /// <summary>Computes logits [B, classes] (float32) for x [B, C, H, W] at timesteps [B].</summary>
    public override Tensor forward(Tensor x, Tensor timesteps) => ForwardWithActivations(x, timesteps, observe: null);

    /// <summary>
    /// <see cref="forward"/> that also reports intermediate activations to <paramref name="observe"/>:
    /// <c>time_embed</c> [B, 4·width], <c>input_blocks.N</c> (each trunk block's output), <c>middle_block</c> and
    /// <see cref="FeaturesActivation"/>, the penultimate features [B, <see cref="HeadFeatureWidth"/>] that the
    /// head's last linear map turns into the logits. Useful for debugging parity; the tensors belong to the
    /// caller's dispose scope.
    /// </summary>
    /// <param name="x">Images [B, C, H, W] (float32; cast to <see cref="TrunkDtype"/> for the trunk).</param>
    /// <param name="timesteps">Timesteps [B] (integer or float).</param>
    /// <param name="observe">Called with (name, activation), or null.</param>
    public Tensor ForwardWithActivations(Tensor x, Tensor timesteps, Action<string, Tensor>? observe)
    {
        if (x.dim() != 4 || x.shape[1] != Options.InChannels)
            throw new ArgumentException($"x must be [B, {Options.InChannels}, H, W], got [{string.Join(", ", x.shape)}].", nameof(x));
        if (timesteps.dim() != 1 || timesteps.shape[0] != x.shape[0])
            throw new ArgumentException($"timesteps must be [B] with B = {x.shape[0]}, got [{string.Join(", ", timesteps.shape)}].", nameof(timesteps));
        var emb = timeEmbed.call(TimestepEmbedding.Sinusoidal(timesteps, Options.ModelChannels));
        observe?.Invoke("time_embed", emb);

        bool spatial = Options.Pool is ClassifierPool.Spatial or ClassifierPool.SpatialV2;
        var means = new List<Tensor>();
        var h = x.to_type(TrunkDtype);
        for (int i = 0; i < inputBlockArray.Length; i++)
        {
            h = inputBlockArray[i].call(h, emb);
            observe?.Invoke($"input_blocks.{i}", h);
            if (spatial) means.Add(h.to_type(x.dtype).mean(new long[] { 2, 3 }));
        }
        h = middleBlock.call(h, emb);
        observe?.Invoke("middle_block", h);
        if (spatial)
        {
            means.Add(h.to_type(x.dtype).mean(new long[] { 2, 3 }));
            return Head(cat(means, dim: -1), observe);
        }
        return Head(h.to_type(x.dtype), observe);
    }

    /// <summary>
    /// Logits [B, classes] and the penultimate features [B, <see cref="HeadFeatureWidth"/>] of one forward pass:
    /// the representation the classifier separates classes in (what a diversity figure of samples measures).
    /// </summary>
    /// <param name="x">Images [B, C, H, W].</param>
    /// <param name="timesteps">Timesteps [B].</param>
    public (Tensor Logits, Tensor Features) ForwardWithFeatures(Tensor x, Tensor timesteps)
    {
        Tensor? features = null;
        var logits = ForwardWithActivations(x, timesteps, (name, value) => { if (name == FeaturesActivation) features = value; });
        return (logits, features!);
    }

    /// <summary>The <c>out</c> Sequential, run layer by layer so that its penultimate output can be reported.</summary>
    private Tensor Head(Tensor h, Action<string, Tensor>? observe)
    {
        for (int i = 0; i < headLayers.Length; i++)
        {
            h = observe is not null && headLayers[i] is AttentionPool2d pool ? pool.Forward(h, observe) : headLayers[i].call(h);
            if (i == featureLayer) observe?.Invoke(FeaturesActivation, h.flatten(1));
        }
        return h;
    }

    /// <summary>The original's <c>convert_to_fp16</c>: trunk convolutions to float16 (GPU only; fp16 is very slow
    /// on CPU). Create optimizers and float32 master copies after calling this: the parameters are new objects.</summary>
    public void ConvertToFp16() => ConvertTrunkTo(ScalarType.Float16);

    /// <summary>The original's <c>convert_to_fp32</c>: trunk convolutions back to float32.</summary>
    public void ConvertToFp32() => ConvertTrunkTo(ScalarType.Float32);

    /// <summary>
    /// Converts the weights and biases of every convolution in input_blocks and middle_block to
    /// <paramref name="dtype"/> (float16, bfloat16 or float32), exactly the set the original's
    /// <c>convert_to_fp16</c> converts. Linear layers, GroupNorms, the timestep MLP and the head stay float32.
    /// The converted parameters are new objects: build optimizers afterwards.
    /// </summary>
    /// <param name="dtype">Float16, BFloat16 or Float32.</param>
    public void ConvertTrunkTo(ScalarType dtype)
    {
        TrunkPrecision.Convert([inputBlocks, middleBlock], dtype);
        TrunkDtype = dtype;
    }

    private static AttentionBlock NewAttentionBlock(int channels, EncoderUNetOptions options) =>
        new(channels, options.NumHeads, options.NumHeadChannels, options.UseNewAttentionOrder, options.UseCheckpoint);

    /// <summary>Children are registered explicitly, in the original's order.</summary>
    protected override void RegisterComponents() { }
}
