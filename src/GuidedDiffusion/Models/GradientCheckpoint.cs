using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>
/// Gradient checkpointing of one block, as the original's <c>nn.checkpoint</c>: the forward runs without recording
/// the block's intermediate activations (only its inputs are kept), and the backward runs the block again with
/// autograd on and differentiates that recomputation with respect to the inputs and the block's parameters. Memory
/// for activations drops to one tensor per block at the price of a second forward of every block.
/// </summary>
/// <remarks>
/// <para>Two differences from the original, both on purpose:</para>
/// <list type="bullet">
/// <item>The original does not save the random-number state, so with dropout &gt; 0 its recomputation draws a
/// different dropout mask than the forward did (the gradients belong to another network than the loss) and the
/// backward advances the generator. Here, with <c>preserveRng</c>, the default CPU generator's state is saved before
/// the forward and restored around the recomputation (then put back to where the backward found it), so the
/// gradients and the random stream of the rest of training equal those without checkpointing — what
/// <c>torch.utils.checkpoint</c> does by default. TorchSharp 0.107 exposes no CUDA generator state, so on a GPU the
/// recomputation of a block with active dropout draws a new mask, as in the original.</item>
/// <item>Inputs that did not require a gradient in the forward get none in the backward (the original differentiates
/// every input, the images included), and the forward is skipped altogether when autograd is off.</item>
/// </list>
/// </remarks>
public static class GradientCheckpoint
{
    [ThreadStatic] private static long recordedNodes;
    [ThreadStatic] private static long recomputations;

    // Per thread: libtorch runs a CPU backward on the thread that called it, so a training loop sees its own counts.

    /// <summary>Checkpointed blocks this thread has put into an autograd graph (a diagnostic: tests use it to prove
    /// checkpointing is on).</summary>
    public static long RecordedNodes => recordedNodes;

    /// <summary>Recomputations this thread's backward passes have run (one per recorded block and backward).</summary>
    public static long Recomputations => recomputations;

    /// <summary>
    /// Runs <paramref name="function"/> on <paramref name="inputs"/>, checkpointed when autograd is recording and some
    /// input or parameter requires a gradient; else simply calls it.
    /// </summary>
    /// <param name="function">The block's forward; it must depend on nothing but its arguments and
    /// <paramref name="parameters"/> (and the dropout generator), and return one tensor.</param>
    /// <param name="inputs">The tensors the block takes (x, and the timestep embedding for a ResBlock).</param>
    /// <param name="parameters">Every parameter the block uses: their gradients come back through the checkpoint.</param>
    /// <param name="preserveRng">Save and restore the CPU generator's state so that the recomputation draws the
    /// forward's dropout mask (needed only when the block has active dropout).</param>
    public static Tensor Apply(Func<Tensor[], Tensor> function, Tensor[] inputs, IEnumerable<Tensor> parameters, bool preserveRng)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(parameters);
        var parameterList = parameters.ToArray();
        if (!is_grad_enabled() || !(inputs.Any(t => t.requires_grad) || parameterList.Any(p => p.requires_grad)))
            return function(inputs);
        var args = new object[3 + inputs.Length + parameterList.Length];
        args[0] = function;
        args[1] = inputs.Length;
        args[2] = preserveRng;
        inputs.CopyTo(args, 3);
        parameterList.CopyTo(args, 3 + inputs.Length);
        recordedNodes++;
        return CheckpointFunction.apply(args);
    }

    /// <summary>The autograd function: its arguments are (function, input count, preserveRng, inputs..., parameters...).</summary>
    private sealed class CheckpointFunction : autograd.SingleTensorFunction<CheckpointFunction>
    {
        public override string Name => "CheckpointFunction";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var function = (Func<Tensor[], Tensor>)vars[0];
            int inputCount = (int)vars[1];
            bool preserveRng = (bool)vars[2];
            var tensors = vars.Skip(3).Cast<Tensor>().ToArray();
            var inputs = tensors[..inputCount];
            ctx.save_data("function", function);
            ctx.save_data("inputCount", inputCount);
            // What needs a gradient is decided now: in the backward every input is a detached copy.
            ctx.save_data("needsGrad", tensors.Select(t => t.requires_grad).ToArray());
            ctx.save_data("parameters", tensors[inputCount..]);
            ctx.save_for_backward(inputs.ToList());
            // The state belongs to the caller's scope (the training step), which outlives the backward.
            if (preserveRng)
                ctx.save_data("rngState", new[] { random.get_rng_state() });

            // Autograd is off here (the caller, Function.apply, turned it off); the block's intermediates are freed as
            // soon as it returns: only the output leaves this scope.
            using var scope = NewDisposeScope();
            return function(inputs).MoveToOuterDisposeScope();
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            var function = (Func<Tensor[], Tensor>)ctx.get_data("function");
            int inputCount = (int)ctx.get_data("inputCount");
            var needsGrad = (bool[])ctx.get_data("needsGrad");
            var parameters = (Tensor[])ctx.get_data("parameters");
            var rngState = (ctx.get_data("rngState") as Tensor[])?[0];
            var saved = ctx.get_saved_variables();

            List<Tensor> grads;
            using (var scope = NewDisposeScope())
            {
                var inputs = saved.Select((t, i) => t.detach().requires_grad_(needsGrad[i])).ToArray();
                Tensor output;
                Tensor? resumeState = null;
                try
                {
                    if (rngState is not null)
                    {
                        resumeState = random.get_rng_state();
                        random.set_rng_state(rngState);
                    }
                    using (enable_grad())
                    {
                        // view_as: the original's guard against a block that modifies its input in place.
                        output = function(inputs.Select(t => t.view_as(t)).ToArray());
                    }
                }
                finally
                {
                    if (resumeState is not null) random.set_rng_state(resumeState);
                }
                recomputations++;

                var wrt = inputs.Concat(parameters).ToArray();
                var differentiate = Enumerable.Range(0, wrt.Length).Where(i => needsGrad[i]).ToArray();
                var computed = autograd.grad(new[] { output }, differentiate.Select(i => wrt[i]).ToArray(),
                    new[] { grad_output }, allow_unused: true);
                grads = Enumerable.Repeat<Tensor>(null!, wrt.Length).ToList();
                for (int k = 0; k < differentiate.Length; k++)
                {
                    var g = computed[k];
                    if (g is not null && !g.IsInvalid) grads[differentiate[k]] = g.MoveToOuterDisposeScope();
                }
            }
            foreach (var t in saved) t.Dispose();
            // No gradients for the function, the input count and the flag.
            return new List<Tensor> { null!, null!, null! }.Concat(grads).ToList();
        }
    }
}
