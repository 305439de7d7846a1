using System.Runtime.CompilerServices;

namespace GuidedDiffusion.Tests.Support;

internal static class TestSetup
{
    /// <summary>
    /// xunit runs test classes in parallel (one per core). Each libtorch op spinning up its own thread pool on
    /// top of that oversubscribes the cores, and OpenMP's busy waiting then makes small ops many times slower;
    /// one intra-op thread per test process keeps the suite fast on 2-core CI machines.
    /// </summary>
    [ModuleInitializer]
    internal static void OneTorchThread() => TorchSharp.torch.set_num_threads(1);
}
