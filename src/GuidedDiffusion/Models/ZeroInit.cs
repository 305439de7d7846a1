using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Models;

/// <summary>The original's <c>zero_module</c>.</summary>
internal static class ZeroInit
{
    /// <summary>
    /// Zeroes every parameter of <paramref name="module"/> and returns it. Output projections start at zero so each
    /// residual block begins as the identity.
    /// </summary>
    public static T Apply<T>(T module) where T : nn.Module
    {
        using var noGrad = no_grad();
        foreach (var p in module.parameters())
            p.zero_();
        return module;
    }
}
