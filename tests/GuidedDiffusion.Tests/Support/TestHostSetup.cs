using System.Runtime.CompilerServices;
using GuidedDiffusion.Runtime;

namespace GuidedDiffusion.Tests.Support;

/// <summary>What the executable does at start-up that changes numbers, done for the in-process tests too.</summary>
internal static class TestHostSetup
{
    /// <summary>MKL's CPU dispatch as <c>guided-diffusion</c> sets it (AVX-512 kernels on AMD), so every in-process
    /// parity test runs on the kernels users get.</summary>
    [ModuleInitializer]
    internal static void Initialize() => MklCpuDispatch.Enable(CpuFeatures.Current);
}
