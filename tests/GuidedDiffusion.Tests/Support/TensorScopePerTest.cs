using System.Reflection;
using TorchSharp;
using Xunit.Sdk;

[assembly: GuidedDiffusion.Tests.Support.TensorScopePerTest]

namespace GuidedDiffusion.Tests.Support;

/// <summary>
/// Runs every test inside a TorchSharp dispose scope, so that tensors a test (or code it calls) creates outside the
/// library's own scopes stay referenced until the test ends instead of being collectable in the middle of it.
/// TorchSharp passes raw handles to libtorch, and the JIT may treat a temporary tensor as dead once its handle is
/// loaded: a finalizer can then free it while the native op still reads it. The likely cause of a test-host crash
/// (2026-12-06, Zen 4: a segfault at address 0x28 in <c>at::namedinference::compute_broadcast_outnames</c> on a
/// test thread, 1 of 5 full runs, after more CLI tests moved into the test process; not reproduced since). The
/// Scalars TorchSharp drops inside <c>a + b</c> and the like have the same race and no scope holds them: the build
/// rewrites those calls (<c>GuidedDiffusion.Runtime.FinalizerSafeTorch</c>, <c>Runtime/FinalizerSafetyTests</c>).
/// </summary>
[AttributeUsage(AttributeTargets.Assembly)]
public sealed class TensorScopePerTestAttribute : BeforeAfterTestAttribute
{
    // TorchSharp's scopes are per thread: open and dispose on the test's thread only.
    [ThreadStatic] private static DisposeScope? scope;

    /// <summary>Whether the running test (on this thread) is inside the per-test scope.</summary>
    public static bool Active => scope is not null;

    /// <inheritdoc/>
    public override void Before(MethodInfo methodUnderTest) => scope = torch.NewDisposeScope();

    /// <inheritdoc/>
    public override void After(MethodInfo methodUnderTest)
    {
        // Detach, not dispose: tests cache reference models and tensors in statics across tests. What nothing
        // references any more goes to the finalizer now, when no native op of this test can still be reading it.
        if (scope is { } s) { s.Detach(s.DisposablesView.ToList()); s.Dispose(); }
        scope = null;
    }
}

public sealed class TensorScopePerTestTests
{
    [Fact]
    public void EveryTest_RunsInsideItsOwnDisposeScope()
    {
        Assert.True(TensorScopePerTestAttribute.Active);
        // A tensor made here is held by the scope until the test ends.
        var t = torch.ones(3);
        Assert.False(t.IsInvalid);
    }
}
