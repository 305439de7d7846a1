using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>
/// A sequence of layers that hands the timestep embedding to the layers that take one (ResBlocks) and only the
/// features to the others, like the original's <c>TimestepEmbedSequential</c>. Children are named "0", "1", ...
/// so the state-dict keys read <c>input_blocks.1.0.in_layers.0.weight</c>.
/// </summary>
public sealed class TimestepEmbedSequential : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly nn.Module[] layers;

    /// <summary>Creates the sequence; each layer is a <c>Module&lt;Tensor, Tensor&gt;</c> or a timestep block
    /// (<c>Module&lt;Tensor, Tensor, Tensor&gt;</c> taking x and the embedding).</summary>
    /// <param name="layers">The layers, in order.</param>
    public TimestepEmbedSequential(params nn.Module[] layers) : base(nameof(TimestepEmbedSequential))
    {
        foreach (var layer in layers)
        {
            if (layer is not (nn.Module<Tensor, Tensor, Tensor> or nn.Module<Tensor, Tensor>))
                throw new ArgumentException($"{layer.GetType().Name} is neither a timestep block nor a tensor-to-tensor layer.", nameof(layers));
        }
        this.layers = layers;
        for (int i = 0; i < layers.Length; i++)
            register_module(i.ToString(System.Globalization.CultureInfo.InvariantCulture), layers[i]);
    }

    /// <summary>The layers, in order.</summary>
    public IReadOnlyList<nn.Module> Layers => layers;

    /// <inheritdoc/>
    public override Tensor forward(Tensor x, Tensor emb)
    {
        foreach (var layer in layers)
        {
            x = layer switch
            {
                nn.Module<Tensor, Tensor, Tensor> timestepBlock => timestepBlock.call(x, emb),
                nn.Module<Tensor, Tensor> plain => plain.call(x),
                _ => throw new InvalidOperationException("unreachable"),
            };
        }
        return x;
    }

    /// <summary>Children are registered explicitly with their index names.</summary>
    protected override void RegisterComponents() { }
}
