using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>
/// The ADM diffusion model: the original's <c>UNetModel</c>. <c>forward(x, t, y)</c> maps noisy images
/// [B, C, H, W], timesteps [B] and (for class-conditional models) labels [B] to ε (and, with learn_sigma, the
/// variance interpolation values) [B, out_channels, H, W]. The module tree, state-dict keys, their order and
/// shapes equal the original's, so the released <c>*_diffusion.pt</c> checkpoints load unchanged.
/// </summary>
public sealed class UNetModel : nn.Module<Tensor, Tensor, Tensor?, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> timeEmbed;
    private readonly Embedding? labelEmb;
    private readonly ModuleList<TimestepEmbedSequential> inputBlocks;
    private readonly TimestepEmbedSequential[] inputBlockArray;
    private readonly TimestepEmbedSequential middleBlock;
    private readonly ModuleList<TimestepEmbedSequential> outputBlocks;
    private readonly TimestepEmbedSequential[] outputBlockArray;
    private readonly nn.Module<Tensor, Tensor> outHead;

    /// <summary>Builds the model the flags describe (like <c>create_model</c>).</summary>
    /// <param name="config">The architecture flags; validated first.</param>
    public UNetModel(DiffusionModelConfig config) : this(config.ToOptions()) { }

    /// <summary>Builds the model from the original constructor's arguments.</summary>
    /// <param name="options">The <c>UNetModel</c> arguments; validated first.</param>
    public UNetModel(UNetOptions options) : base(nameof(UNetModel))
    {
        options.Validate();
        Options = options;
        int modelChannels = options.ModelChannels;
        int timeEmbedDim = modelChannels * 4;
        timeEmbed = nn.Sequential(nn.Linear(modelChannels, timeEmbedDim), nn.SiLU(), nn.Linear(timeEmbedDim, timeEmbedDim));
        if (options.NumClasses is { } classes)
            labelEmb = nn.Embedding(classes, timeEmbedDim);

        int ch = options.LevelChannels(0);
        int inputCh = ch;
        var blocks = new List<TimestepEmbedSequential>
        {
            new(Conv.Nd2(options.InChannels, ch, 3, padding: 1)),
        };
        var skipChannels = new Stack<int>();
        skipChannels.Push(ch);
        int ds = 1;
        int levels = options.ChannelMult.Count;
        for (int level = 0; level < levels; level++)
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
                    layers.Add(new AttentionBlock(ch, options.NumHeads, options.NumHeadChannels, options.UseNewAttentionOrder, options.UseCheckpoint));
                blocks.Add(new TimestepEmbedSequential(layers.ToArray()));
                skipChannels.Push(ch);
            }
            if (level != levels - 1)
            {
                blocks.Add(new TimestepEmbedSequential(options.ResblockUpdown
                    ? new ResBlock(ch, timeEmbedDim, options.Dropout, ch, options.UseScaleShiftNorm, down: true, useCheckpoint: options.UseCheckpoint)
                    : new Downsample(ch, options.ConvResample, ch)));
                skipChannels.Push(ch);
                ds *= 2;
            }
        }
        inputBlockArray = blocks.ToArray();
        inputBlocks = nn.ModuleList(inputBlockArray);

        middleBlock = new TimestepEmbedSequential(
            new ResBlock(ch, timeEmbedDim, options.Dropout, useScaleShiftNorm: options.UseScaleShiftNorm, useCheckpoint: options.UseCheckpoint),
            new AttentionBlock(ch, options.NumHeads, options.NumHeadChannels, options.UseNewAttentionOrder, options.UseCheckpoint),
            new ResBlock(ch, timeEmbedDim, options.Dropout, useScaleShiftNorm: options.UseScaleShiftNorm, useCheckpoint: options.UseCheckpoint));

        var upBlocks = new List<TimestepEmbedSequential>();
        for (int level = levels - 1; level >= 0; level--)
        {
            for (int i = 0; i <= options.NumResBlocks; i++)
            {
                int skip = skipChannels.Pop();
                int outCh = options.LevelChannels(level);
                var layers = new List<nn.Module>
                {
                    new ResBlock(ch + skip, timeEmbedDim, options.Dropout, outCh, options.UseScaleShiftNorm, useCheckpoint: options.UseCheckpoint),
                };
                ch = outCh;
                if (options.AttentionResolutions.Contains(ds))
                    layers.Add(new AttentionBlock(ch, options.EffectiveNumHeadsUpsample, options.NumHeadChannels, options.UseNewAttentionOrder, options.UseCheckpoint));
                if (level > 0 && i == options.NumResBlocks)
                {
                    layers.Add(options.ResblockUpdown
                        ? new ResBlock(ch, timeEmbedDim, options.Dropout, ch, options.UseScaleShiftNorm, up: true, useCheckpoint: options.UseCheckpoint)
                        : new Upsample(ch, options.ConvResample, ch));
                    ds /= 2;
                }
                upBlocks.Add(new TimestepEmbedSequential(layers.ToArray()));
            }
        }
        outputBlockArray = upBlocks.ToArray();
        outputBlocks = nn.ModuleList(outputBlockArray);

        outHead = nn.Sequential(
            new GroupNorm32(ch),
            nn.SiLU(),
            ZeroInit.Apply(Conv.Nd2(inputCh, options.OutChannels, 3, padding: 1)));

        register_module("time_embed", timeEmbed);
        if (labelEmb is not null) register_module("label_emb", labelEmb);
        register_module("input_blocks", inputBlocks);
        register_module("middle_block", middleBlock);
        register_module("output_blocks", outputBlocks);
        register_module("out", outHead);
    }

    /// <summary>The constructor arguments this model was built from.</summary>
    public UNetOptions Options { get; }

    /// <summary>Whether the model needs labels y (it has a <c>label_emb</c>).</summary>
    public bool IsClassConditional => labelEmb is not null;

    /// <summary>The dtype of the trunk (input, middle and output blocks' convolutions): float32 unless converted by
    /// <see cref="ConvertTrunkTo"/>. The input is cast to it, and the features back to the input dtype before
    /// <c>out</c>.</summary>
    public ScalarType TrunkDtype { get; private set; } = ScalarType.Float32;

    /// <summary>Predicts [B, out_channels, H, W] for x [B, C, H, W] at timesteps [B], with labels y [B] (int64)
    /// exactly when the model is class-conditional.</summary>
    public override Tensor forward(Tensor x, Tensor timesteps, Tensor? y) => ForwardWithActivations(x, timesteps, y, observe: null);

    /// <summary>
    /// <see cref="forward"/> that also reports intermediate activations to <paramref name="observe"/>:
    /// <c>time_embed</c> [B, 4·width] (before the label embedding is added), <c>input_blocks.N</c>,
    /// <c>middle_block</c> and <c>output_blocks.N</c>. The tensors belong to the caller's dispose scope.
    /// </summary>
    /// <param name="x">Noisy images [B, C, H, W].</param>
    /// <param name="timesteps">Timesteps [B] (integer or float), already mapped to the original process.</param>
    /// <param name="y">Labels [B] for a class-conditional model, else null.</param>
    /// <param name="observe">Called with (name, activation), or null.</param>
    public Tensor ForwardWithActivations(Tensor x, Tensor timesteps, Tensor? y, Action<string, Tensor>? observe)
    {
        if (x.dim() != 4 || x.shape[1] != Options.InChannels)
            throw new ArgumentException($"x must be [B, {Options.InChannels}, H, W], got [{string.Join(", ", x.shape)}].", nameof(x));
        if (timesteps.dim() != 1 || timesteps.shape[0] != x.shape[0])
            throw new ArgumentException($"timesteps must be [B] with B = {x.shape[0]}, got [{string.Join(", ", timesteps.shape)}].", nameof(timesteps));
        if ((y is not null) != IsClassConditional)
            throw new ArgumentException(IsClassConditional
                ? "this model is class-conditional: labels y are required."
                : "this model is unconditional: pass y = null.", nameof(y));
        int factor = 1 << (Options.ChannelMult.Count - 1);
        if (x.shape[2] % factor != 0 || x.shape[3] % factor != 0)
            throw new ArgumentException($"x's height and width must be divisible by {factor}, got [{string.Join(", ", x.shape)}].", nameof(x));

        // The sinusoid is float32 as in the original; a float64 model (parity tests' ground truth) takes it as float64.
        var sinusoid = TimestepEmbedding.Sinusoidal(timesteps, Options.ModelChannels);
        var emb = timeEmbed.call(TrunkDtype == ScalarType.Float64 ? sinusoid.to_type(ScalarType.Float64) : sinusoid);
        observe?.Invoke("time_embed", emb);
        if (labelEmb is not null)
        {
            if (y!.dim() != 1 || y.shape[0] != x.shape[0])
                throw new ArgumentException($"y must be [B] with B = {x.shape[0]}, got [{string.Join(", ", y.shape)}].", nameof(y));
            emb = emb + labelEmb.call(y.to_type(ScalarType.Int64));
        }

        var skips = new Stack<Tensor>();
        var h = x.to_type(TrunkDtype);
        for (int i = 0; i < inputBlockArray.Length; i++)
        {
            h = inputBlockArray[i].call(h, emb);
            observe?.Invoke($"input_blocks.{i}", h);
            skips.Push(h);
        }
        h = middleBlock.call(h, emb);
        observe?.Invoke("middle_block", h);
        for (int i = 0; i < outputBlockArray.Length; i++)
        {
            h = outputBlockArray[i].call(cat(new[] { h, skips.Pop() }, dim: 1), emb);
            observe?.Invoke($"output_blocks.{i}", h);
        }
        return outHead.call(h.to_type(x.dtype));
    }

    /// <summary>The original's <c>convert_to_fp16</c>: trunk convolutions to float16 (GPU only).</summary>
    public void ConvertToFp16() => ConvertTrunkTo(ScalarType.Float16);

    /// <summary>
    /// Converts the weights and biases of every convolution in input_blocks, middle_block and output_blocks to
    /// <paramref name="dtype"/> (float16, bfloat16 or float32), the set the original's <c>convert_to_fp16</c>
    /// converts. The timestep MLP, label embedding, GroupNorms and the final <c>out</c> layers stay float32.
    /// Float64 is for a float64 ground truth: call it after <c>to(Float64)</c> has converted everything else.
    /// </summary>
    /// <param name="dtype">Float16, BFloat16, Float32 or Float64.</param>
    public void ConvertTrunkTo(ScalarType dtype)
    {
        TrunkPrecision.Convert([inputBlocks, middleBlock, outputBlocks], dtype);
        TrunkDtype = dtype;
    }

    /// <summary>Children are registered explicitly, in the original's order.</summary>
    protected override void RegisterComponents() { }
}
