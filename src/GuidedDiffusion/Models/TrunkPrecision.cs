using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>The dtype conversion of a UNet trunk, shared by the classifier and the diffusion model.</summary>
internal static class TrunkPrecision
{
    /// <summary>
    /// Converts the weights and biases of every convolution under <paramref name="trunk"/> to <paramref name="dtype"/>:
    /// the set the original's <c>convert_module_to_f16</c> converts (it touches only Conv1d/2d/3d).
    /// Float64 is for a float64 ground truth (after <c>to(Float64)</c> has converted everything else).
    /// </summary>
    /// <exception cref="ArgumentException">A dtype other than float16, bfloat16, float32 or float64.</exception>
    public static void Convert(IEnumerable<nn.Module> trunk, ScalarType dtype)
    {
        if (dtype is not (ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64))
            throw new ArgumentException($"the trunk can be float16, bfloat16, float32 or float64, not {dtype}.", nameof(dtype));
        foreach (var root in trunk)
        {
            foreach (var (_, module) in root.named_modules())
            {
                if (module is Convolution)
                    module.to(dtype);
            }
        }
    }
}
