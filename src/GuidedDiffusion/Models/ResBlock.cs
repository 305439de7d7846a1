using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>
/// The timestep-conditioned residual block: GroupNorm→SiLU→conv3×3, plus the timestep projection (added, or as
/// scale and shift of the second norm), then SiLU→Dropout→zero-initialised conv3×3, and a skip path (identity or
/// 1×1 conv). The down variant average-pools both paths after the first norm+SiLU; the up variant (the diffusion
/// UNet's decoder) doubles both paths by nearest-neighbour upsampling at the same place. Children and their indices
/// match the original: <c>in_layers.{0,2}</c>, <c>emb_layers.1</c>, <c>out_layers.{0,3}</c>, <c>skip_connection</c>.
/// </summary>
public sealed class ResBlock : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> inLayers;
    private readonly GroupNorm32 inNorm;
    private readonly nn.Module<Tensor, Tensor> inSiLU;
    private readonly nn.Module<Tensor, Tensor> inConv;
    private readonly nn.Module<Tensor, Tensor>? hUpd;
    private readonly nn.Module<Tensor, Tensor>? xUpd;
    private readonly nn.Module<Tensor, Tensor> embLayers;
    private readonly nn.Module<Tensor, Tensor> outLayers;
    private readonly GroupNorm32 outNorm;
    private readonly nn.Module<Tensor, Tensor> outRest;
    private readonly nn.Module<Tensor, Tensor> skipConnection;

    /// <summary>Creates the block.</summary>
    /// <param name="channels">Input channels.</param>
    /// <param name="embChannels">Width of the timestep embedding (4·model_channels).</param>
    /// <param name="dropout">Dropout probability before the last convolution.</param>
    /// <param name="outChannels">Output channels (defaults to <paramref name="channels"/>).</param>
    /// <param name="useScaleShiftNorm">FiLM-style conditioning: norm(h)·(1+scale)+shift instead of adding.</param>
    /// <param name="down">Halve the resolution with average pooling on both paths.</param>
    /// <param name="up">Double the resolution with nearest-neighbour upsampling on both paths.</param>
    /// <param name="useCheckpoint">Gradient checkpointing: recompute the block in the backward instead of keeping its
    /// activations (<see cref="GradientCheckpoint"/>).</param>
    public ResBlock(long channels, long embChannels, double dropout, long? outChannels = null,
        bool useScaleShiftNorm = false, bool down = false, bool up = false, bool useCheckpoint = false) : base(nameof(ResBlock))
    {
        if (up && down) throw new ArgumentException("a ResBlock cannot both upsample and downsample.", nameof(up));
        Channels = channels;
        OutChannels = outChannels ?? channels;
        UseScaleShiftNorm = useScaleShiftNorm;
        Down = down;
        Up = up;
        Dropout = dropout;
        UseCheckpoint = useCheckpoint;

        inNorm = new GroupNorm32(channels);
        inSiLU = nn.SiLU();
        inConv = Conv.Nd2(channels, OutChannels, 3, padding: 1);
        inLayers = nn.Sequential(inNorm, inSiLU, inConv);

        if (down)
        {
            hUpd = new Downsample(channels, useConv: false);
            xUpd = new Downsample(channels, useConv: false);
        }
        else if (up)
        {
            hUpd = new Upsample(channels, useConv: false);
            xUpd = new Upsample(channels, useConv: false);
        }

        embLayers = nn.Sequential(nn.SiLU(), nn.Linear(embChannels, useScaleShiftNorm ? 2 * OutChannels : OutChannels));

        outNorm = new GroupNorm32(OutChannels);
        var outSiLU = nn.SiLU();
        var outDropout = nn.Dropout(dropout);
        var outConv = ZeroInit.Apply(Conv.Nd2(OutChannels, OutChannels, 3, padding: 1));
        outLayers = nn.Sequential(outNorm, outSiLU, outDropout, outConv);
        outRest = nn.Sequential(outSiLU, outDropout, outConv);

        skipConnection = OutChannels == channels
            ? nn.Identity()
            : Conv.Nd2(channels, OutChannels, 1);

        // Registration order = the original's attribute order, which fixes the state-dict key order.
        register_module("in_layers", inLayers);
        if (down || up)
        {
            register_module("h_upd", hUpd!);
            register_module("x_upd", xUpd!);
        }
        register_module("emb_layers", embLayers);
        register_module("out_layers", outLayers);
        register_module("skip_connection", skipConnection);
    }

    /// <summary>Input channels.</summary>
    public long Channels { get; }

    /// <summary>Output channels.</summary>
    public long OutChannels { get; }

    /// <summary>Whether the timestep acts as scale and shift after the second norm.</summary>
    public bool UseScaleShiftNorm { get; }

    /// <summary>Whether this block halves the resolution.</summary>
    public bool Down { get; }

    /// <summary>Whether this block doubles the resolution.</summary>
    public bool Up { get; }

    /// <summary>Dropout probability before the last convolution.</summary>
    public double Dropout { get; }

    /// <summary>Whether the block is recomputed in the backward instead of keeping its activations.</summary>
    public bool UseCheckpoint { get; }

    /// <summary>Applies the block to x [B, C, H, W] given the timestep embedding emb [B, E].</summary>
    public override Tensor forward(Tensor x, Tensor emb) => UseCheckpoint
        ? GradientCheckpoint.Apply(inputs => Forward(inputs[0], inputs[1]), [x, emb], parameters(), preserveRng: training && Dropout > 0)
        : Forward(x, emb);

    private Tensor Forward(Tensor x, Tensor emb)
    {
        Tensor h;
        if (Down || Up)
        {
            h = inSiLU.call(inNorm.call(x));
            h = hUpd!.call(h);
            x = xUpd!.call(x);
            h = inConv.call(h);
        }
        else
        {
            h = inLayers.call(x);
        }

        var embOut = embLayers.call(emb).to_type(h.dtype).unsqueeze(-1).unsqueeze(-1);
        if (UseScaleShiftNorm)
        {
            var scaleShift = embOut.chunk(2, dim: 1);
            h = outNorm.call(h) * (1 + scaleShift[0]) + scaleShift[1];
            h = outRest.call(h);
        }
        else
        {
            h = outLayers.call(h + embOut);
        }
        return skipConnection.call(x) + h;
    }

    /// <summary>Children are registered explicitly, in the original's order.</summary>
    protected override void RegisterComponents() { }
}
