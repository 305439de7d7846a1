using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// One AdamW update of a TorchSharp <see cref="AdamW"/> optimizer: its parameters, options and state, op for op
/// what <c>AdamW.step()</c> does (PyTorch's single-tensor AdamW), so the numbers and the saved state are the same.
/// </summary>
/// <remarks>
/// Why not <c>step()</c>: TorchSharp writes it as a C# loop whose Scalars (<c>mul_(beta1)</c>,
/// <c>add_(grad, alpha: 1 - beta1)</c>, ...) are dropped as soon as their handles are passed, so a collection on
/// another thread can finalize one while libtorch reads it (see <see cref="Runtime.FinalizerSafeTorch"/>). This
/// copy is compiled in our assembly, where the build holds every such Scalar until its call returns.
/// </remarks>
public static class AdamWUpdate
{
    /// <summary>Applies one update to every parameter of <paramref name="optimizer"/> that has a gradient.</summary>
    public static void Step(AdamW optimizer)
    {
        var dict = optimizer.state_dict();
        var parameters = optimizer.parameters().ToArray();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (int group = 0; group < dict.Options.Count; group++)
        {
            var options = (AdamW.Options)dict.Options[group];
            double beta1 = options.beta1!.Value, beta2 = options.beta2!.Value, weightDecay = options.weight_decay!.Value;
            double eps = options.eps!.Value, lr = options.LearningRate!.Value;
            bool amsgrad = options.amsgrad!.Value, maximize = options.maximize!.Value;
            foreach (int index in dict.StateIndexRef[group])
            {
                var param = parameters[index];
                var state = (AdamW.State)dict.State[index];
                var grad = param.grad;
                if (grad is null) continue;
                if (maximize) grad = -grad;
                state.step += 1;
                param.mul_(1 - lr * weightDecay);
                double biasCorrection1 = 1 - Math.Pow(beta1, state.step);
                double biasCorrection2 = 1 - Math.Pow(beta2, state.step);
                state.exp_avg.mul_(beta1).add_(grad, alpha: 1 - beta1);
                state.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value: 1 - beta2);
                Tensor denom;
                if (amsgrad)
                {
                    var previous = state.max_exp_avg_sq;
                    state.max_exp_avg_sq = maximum(previous, state.exp_avg_sq).DetachFromDisposeScope();
                    previous.Dispose();
                    denom = (state.max_exp_avg_sq.sqrt() / Math.Sqrt(biasCorrection2)).add_(eps);
                }
                else
                {
                    denom = (state.exp_avg_sq.sqrt() / Math.Sqrt(biasCorrection2)).add_(eps);
                }
                param.addcdiv_(state.exp_avg, denom, value: -(lr / biasCorrection1));
            }
        }
    }
}
