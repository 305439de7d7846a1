using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Diffusion.Solvers;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Runtime;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Tests.Guidance;
using GuidedDiffusion.Tests.Training;
using GuidedDiffusion.Training;
using Mono.Cecil;
using Mono.Cecil.Cil;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Runtime;

/// <summary>
/// TorchSharp drops Scalars it creates inside members such as <c>a + b</c> while libtorch still reads them, so a
/// collection on another thread can finalize one mid-call (a use after free: "Expected false to be true … toFloat",
/// or a segfault). The build rewrites those calls (<see cref="FinalizerSafeTorch"/>); these tests check that none
/// is left in the compiled assemblies and that the library's jobs run under a thread that collects without pause.
/// </summary>
public sealed class FinalizerSafetyTests
{
    [Fact]
    public void CompiledAssemblies_CallNoTorchSharpMemberThatDropsAScalar()
    {
        var scan = new ScalarDropScan(typeof(torch).Assembly.Location);
        var assemblies = new[]
        {
            typeof(FinalizerSafeTorch).Assembly.Location,
            typeof(GuidedDiffusion.Cli.Program).Assembly.Location,
            typeof(FinalizerSafetyTests).Assembly.Location,
        };
        var offending = assemblies.SelectMany(scan.Offending).ToList();
        Assert.True(offending.Count == 0, "calls that drop a Scalar (is build/KeepAliveWeaver.targets running?):\n" + string.Join("\n", offending.Distinct().Take(40)));
        // The scan reads what it should: the woven assemblies call the stand-ins hundreds of times, the wrappers thousands.
        Assert.True(scan.CallsToStandIns > 100, $"only {scan.CallsToStandIns} calls to FinalizerSafeTorch found");
        Assert.True(scan.CallsKeptAlive > 1000, $"only {scan.CallsKeptAlive} calls through keep-alive wrappers found");
    }

    [Fact]
    public void TheScan_FindsWhatTheWeaverRemoves()
    {
        // An assembly compiled here and never woven: TorchSharp's `a + b` and an implicit Scalar are found.
        var scan = new ScalarDropScan(typeof(torch).Assembly.Location);
        var torchSharp = AssemblyDefinition.ReadAssembly(typeof(torch).Assembly.Location);
        var tensor = torchSharp.MainModule.GetType("TorchSharp.torch/Tensor");
        Assert.True(scan.DropsAScalar(tensor.Methods.Single(m => m.Name == "op_Addition" && m.Parameters.All(p => p.ParameterType.FullName == tensor.FullName))));
        Assert.True(scan.DropsAScalar(tensor.Methods.Single(m => m.Name == "op_Multiply" && m.Parameters[0].ParameterType.FullName == tensor.FullName && m.Parameters[1].ParameterType.MetadataType == MetadataType.Double)));
        Assert.False(scan.DropsAScalar(tensor.Methods.Single(m => m.Name == "mul" && m.Parameters.Count == 1 && m.Parameters[0].ParameterType.Name == "Scalar")));
        Assert.False(scan.DropsAScalar(tensor.Methods.Single(m => m.Name == "op_Multiply" && m.Parameters.All(p => p.ParameterType.FullName == tensor.FullName))));
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void AdamWUpdate_EqualsTorchSharpsStep_BitForBit(bool amsgrad, bool maximize)
    {
        (TorchSharp.Modules.Parameter[] Parameters, TorchSharp.Modules.AdamW Optimizer) Make()
        {
            manual_seed(11);
            var p = new[] { new TorchSharp.Modules.Parameter(randn(4, 3)), new TorchSharp.Modules.Parameter(randn(5)) };
            return (p, optim.AdamW(p, lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.05, amsgrad: amsgrad, maximize: maximize));
        }
        var (ours, ourOptimizer) = Make();
        var (theirs, theirOptimizer) = Make();
        for (int step = 0; step < 4; step++)
        {
            manual_seed(100 + step);
            foreach (var (a, b) in ours.Zip(theirs))
            {
                var grad = randn(a.shape);
                a.grad = grad.clone();
                b.grad = grad.clone();
            }
            AdamWUpdate.Step(ourOptimizer);
            theirOptimizer.step();  // the reference: TorchSharp's own loop (the one call of it the scan allows)
        }
        foreach (var (a, b) in ours.Zip(theirs)) Assert.True(Same(a, b), "parameters differ");
        var ourState = ourOptimizer.state_dict().State.Cast<TorchSharp.Modules.AdamW.State>().ToArray();
        var theirState = theirOptimizer.state_dict().State.Cast<TorchSharp.Modules.AdamW.State>().ToArray();
        foreach (var (a, b) in ourState.Zip(theirState))
        {
            Assert.Equal(b.step, a.step);
            Assert.True(Same(a.exp_avg, b.exp_avg) && Same(a.exp_avg_sq, b.exp_avg_sq), "moments differ");
            if (amsgrad) Assert.True(Same(a.max_exp_avg_sq, b.max_exp_avg_sq), "max_exp_avg_sq differs");
        }
    }

    private static bool Same(Tensor a, Tensor b) => a.eq(b).all().item<bool>();

    [Fact]
    public void TensorArithmetic_AsTheBuildRewritesIt_SurvivesACollectorThatNeverStops()
    {
        // Without the rewrite this loop fails within a second: TorchSharp's a + b, x * 0.5, x - 1 and ToDouble each
        // drop a Scalar libtorch is about to read.
        using var collector = new RelentlessCollector();
        var a = randn(4096);
        var b = randn(4096);
        double total = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(1.5))
        {
            using var scope = NewDisposeScope();
            total += ((a + b) * 0.5 - 1).sum().ToDouble();
        }
        Assert.True(double.IsFinite(total));
        Assert.True(collector.Collections >= 10, $"only {collector.Collections} collections ran beside the loop");  // full collections: slower when the whole suite has filled the heap
    }

    [Fact]
    public void TemporaryTensorsOutsideAnyDisposeScope_SurviveACollectorThatNeverStops()
    {
        // Without the build's keep-alive wrappers this loop goes wrong within a second: nothing references the
        // temporaries a.exp() and a.sin() once their handles are passed, and the collector finalizes them while
        // libtorch multiplies — a segfault where freed memory is unmapped, and with our allocator settings (freed
        // blocks stay mapped, CpuRuntime) a silently wrong sum. Its own thread: no dispose scope (the per-test
        // scope would hold them).
        using var collector = new RelentlessCollector();
        var a = rand(65536);
        (int Iterations, int Wrong) result = default;
        var worker = new Thread(() => result = Churn(a, TimeSpan.FromSeconds(2), minIterations: 300));
        worker.Start();
        worker.Join();
        Assert.True(result.Iterations >= 300, $"only {result.Iterations} iterations in 20 s");
        Assert.True(result.Wrong == 0, $"{result.Wrong} of {result.Iterations} sums differ from the first");
        Assert.True(collector.Collections >= 10, $"only {collector.Collections} collections ran beside the loop");  // full collections: slower when the whole suite has filled the heap
    }

    // The same sum again and again, for at least the duration and the iterations (at most 20 s: full collections
    // slow the loop down once the whole suite has filled the heap): every result must equal the first. Optimised
    // from the first call: tier-0 code keeps every temporary alive to the end of the method, which hides the race
    // until the loop is recompiled.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static (int Iterations, int Wrong) Churn(Tensor a, TimeSpan duration, int minIterations)
    {
        double expected = a.mul(a.exp()).mul(a.sin()).sum().ToDouble();
        int iterations = 0, wrong = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (; (clock.Elapsed < duration || iterations < minIterations) && clock.Elapsed < TimeSpan.FromSeconds(20); iterations++)
            if (a.mul(a.exp()).mul(a.sin()).sum().ToDouble() != expected) wrong++;
        return (iterations, wrong);
    }

    [Fact]
    public void TrainingEvaluationAndGuidedSampling_RunUnderACollectorThatNeverStops()
    {
        string folder = TestImages.TempDir();
        string data = TrainingFixtures.ImageFolder(3, 4, size: 32, seed: 4);
        string unetPath = Path.Combine(folder, "unet.pt"), classifierPath = Path.Combine(folder, "classifier.pt");
        using (var unet = GuidanceReference.LoadUNet(GuidanceReference.CondUNet)) StateDictIO.Save(unet, unetPath);
        using (var classifier = GuidanceReference.LoadClassifier()) StateDictIO.Save(classifier, classifierPath);

        // Before the build rewrote the calls, the library's sample flow under this thread failed 3 runs of 3.
        using var collector = new RelentlessCollector();
        // Many short ops first, each a chance for the race: the tiny classifier's forward, backward and update.
        using (var classifier = GuidanceReference.LoadClassifier())
        {
            var optimizer = optim.AdamW(classifier.parameters(), lr: 1e-4);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (int i = 0; clock.Elapsed < TimeSpan.FromSeconds(3); i++)
            {
                using var scope = NewDisposeScope();
                var x = randn(2, 3, 16, 16);
                var loss = nn.functional.cross_entropy(classifier.forward(x, tensor(new long[] { 10 * i % 1000, 500 })), tensor(new long[] { 1, 2 }));
                optimizer.zero_grad();
                loss.backward();
                AdamWUpdate.Step(optimizer);
            }
        }
        var training = TrainingFixtures.ShortRun(data, data, Path.Combine(folder, "train"), iterations: 3) with
        {
            Data = new() { DataDir = data, BatchSize = 4, NumWorkers = 1 },
        };
        var run = new ClassifierTrainingJob(training, TrainingFixtures.SmallClassifier(null) with { ImageSize = 32 }, TrainingFixtures.Diffusion).Run();
        Assert.Equal(3, run.CompletedSteps);
        var evaluation = new NoiseLevelEvaluationJob(new NoiseLevelEvaluationOptions
        {
            Classifier = new ClassifierSource { Path = run.LastCheckpoint },
            DataDir = data,
            Evaluation = new EvaluationOptions { Timesteps = [0, 500], NoiseRepeats = 1, ComputeGradNorm = true },
        }).Run();
        Assert.Equal(2, evaluation.Report.Levels.Count);
        var samples = new GuidedSamplingJob(new GuidedSamplingOptions
        {
            Model = new DiffusionModelSource { Path = unetPath, Architecture = ClassifierSampleCommandTests.TinyUNet, Diffusion = new DiffusionConfig { LearnSigma = true } },
            ClassifierPath = classifierPath,
            Classifier = ClassifierSampleCommandTests.TinyClassifier with { NumClasses = null },
            Sampler = SamplerKind.DpmSolverPlusPlus, Solver = new SolverOptions { Steps = 4 },
            NumSamples = 2, BatchSize = 2, ClassifierScale = 10, OutDir = Path.Combine(folder, "samples"),
        }).Run();
        Assert.True(File.Exists(samples.NpzPath));
        Assert.True(collector.Collections > 50, $"only {collector.Collections} collections ran beside the jobs");
    }

    /// <summary>A background thread that collects and runs finalizers back to back until disposed.</summary>
    private sealed class RelentlessCollector : IDisposable
    {
        private volatile bool stop;
        private readonly Thread thread;
        public int Collections;

        public RelentlessCollector()
        {
            thread = new Thread(() =>
            {
                while (!stop)
                {
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    Interlocked.Increment(ref Collections);
                }
            }) { IsBackground = true, Name = "relentless collector" };
            thread.Start();
        }

        public void Dispose()
        {
            stop = true;
            thread.Join();
        }
    }
}

/// <summary>
/// Finds, in compiled IL, calls to TorchSharp members that create a Scalar and drop it while passing it on
/// (the member's body, or one it calls inside TorchSharp, makes a Scalar that it does not return), implicit
/// Scalar conversions, and TorchSharp's optimizer steps (C# loops over such Scalars, reached through a virtual
/// call the body scan cannot follow).
/// </summary>
internal sealed class ScalarDropScan
{
    private const string ScalarType = "TorchSharp.Scalar";
    private readonly Dictionary<string, bool> _drops = new(StringComparer.Ordinal);
    private readonly DefaultAssemblyResolver _resolver = new();

    public ScalarDropScan(string torchSharpPath)
    {
        _resolver.AddSearchDirectory(Path.GetDirectoryName(torchSharpPath)!);
        _resolver.AddSearchDirectory(AppContext.BaseDirectory);
    }

    /// <summary>Calls to <see cref="FinalizerSafeTorch"/> seen by <see cref="Offending"/>.</summary>
    public int CallsToStandIns { get; private set; }

    /// <summary>"Type::method → called member" for every offending call in the assembly at <paramref name="path"/>.</summary>
    public IEnumerable<string> Offending(string path)
    {
        var module = ModuleDefinition.ReadModule(path, new ReaderParameters { AssemblyResolver = _resolver });
        foreach (var type in module.GetTypes())
        {
            // The stand-ins call the real members; the build's keep-alive wrappers are read through their callers.
            if (type.FullName is "GuidedDiffusion.Runtime.FinalizerSafeTorch" or KeepAliveHolder) continue;
            foreach (var method in type.Methods.Where(m => m.HasBody))
                foreach (var instruction in method.Body.Instructions)
                {
                    if (instruction.Operand is not MethodReference called) continue;
                    if (called.DeclaringType.FullName == typeof(FinalizerSafeTorch).FullName) { CallsToStandIns++; continue; }
                    bool kept = false;
                    if (called.DeclaringType.FullName == KeepAliveHolder)
                    {
                        // A wrapper: the TorchSharp call inside it, its arguments held until it returns.
                        called = called.Resolve().Body.Instructions.Select(i => i.Operand).OfType<MethodReference>()
                            .First(m => m.DeclaringType.Scope.Name.StartsWith("TorchSharp", StringComparison.Ordinal));
                        kept = true;
                        CallsKeptAlive++;
                    }
                    if (!called.DeclaringType.Scope.Name.StartsWith("TorchSharp", StringComparison.Ordinal)) continue;
                    string where = $"{type.FullName}::{method.Name} → {called.DeclaringType.Name}::{called.Name}({string.Join(",", called.Parameters.Select(p => p.ParameterType.Name))})";
                    if (called.Name == "step" && called.DeclaringType.FullName.StartsWith("TorchSharp.torch/optim/", StringComparison.Ordinal))
                    {
                        // The equality test's reference is TorchSharp's own step.
                        if (method.Name.StartsWith(nameof(FinalizerSafetyTests.AdamWUpdate_EqualsTorchSharpsStep_BitForBit), StringComparison.Ordinal)) continue;
                        yield return where + " (use AdamWUpdate.Step)";
                    }
                    else if (called.DeclaringType.FullName == ScalarType && called.Name == "op_Implicit") yield return where;
                    else if (Resolve(called) is { } definition && DropsAScalar(definition)) yield return where;
                    else if (!kept && NeedsKeepAlive(instruction, called)) yield return where + " (arguments not kept alive)";
                }
        }
    }

    /// <summary>Calls to TorchSharp that go through the build's keep-alive wrappers.</summary>
    public int CallsKeptAlive { get; private set; }

    private const string KeepAliveHolder = "<TorchSharpKeepAlive>";

    // The calls whose object arguments must outlive the native call: a public, non-generic TorchSharp method (not a
    // constructor) with an instance or an object parameter, none by reference, not behind constrained./tail.
    private static bool NeedsKeepAlive(Instruction call, MethodReference called)
    {
        if (called.DeclaringType.Scope.Name is not ("TorchSharp" or "TorchSharp.dll")) return false;  // TorchSharp itself, not PyBridge
        if (call.OpCode.Code is not (Code.Call or Code.Callvirt) || called.Name is ".ctor" or ".cctor") return false;
        if (called.HasGenericParameters || called is GenericInstanceMethod || called.DeclaringType is GenericInstanceType || called.DeclaringType.IsValueType) return false;
        if (call.Previous?.OpCode.Code is Code.Constrained or Code.Tail) return false;
        if (called.Parameters.Any(p => p.ParameterType.IsByReference || p.ParameterType.IsPointer || p.ParameterType.IsGenericParameter)) return false;
        if (called.ReturnType.IsByReference || called.ReturnType.IsGenericParameter) return false;
        if (Resolve(called) is not { IsPublic: true } definition) return false;
        for (var t = definition.DeclaringType; t is not null; t = t.DeclaringType) if (!(t.IsPublic || t.IsNestedPublic)) return false;
        return called.HasThis || called.Parameters.Any(p => !p.ParameterType.IsValueType && p.ParameterType.MetadataType != MetadataType.String);
    }

    /// <summary>Whether <paramref name="method"/> (a TorchSharp member) creates a Scalar it does not return.</summary>
    public bool DropsAScalar(MethodDefinition method) => method.ReturnType.FullName != ScalarType && MakesScalar(method, 0);

    private bool MakesScalar(MethodDefinition method, int depth)
    {
        if (!method.HasBody || depth > 6) return false;
        if (_drops.TryGetValue(method.FullName, out var known)) return known;
        _drops[method.FullName] = false;  // cycles
        bool makes = false;
        foreach (var instruction in method.Body.Instructions)
        {
            if (instruction.Operand is not MethodReference called) continue;
            if (called.ReturnType.FullName == ScalarType && instruction.OpCode.Code is Code.Call or Code.Callvirt or Code.Newobj) { makes = true; break; }
            if (called.DeclaringType.FullName == ScalarType && instruction.OpCode.Code == Code.Newobj) { makes = true; break; }
            if (Resolve(called) is { } next && next.Module.Assembly.Name.Name == "TorchSharp" && MakesScalar(next, depth + 1)) { makes = true; break; }
        }
        _drops[method.FullName] = makes;
        return makes;
    }

    private static MethodDefinition? Resolve(MethodReference reference)
    {
        try { return reference.Resolve(); }
        catch (AssemblyResolutionException) { return null; }
    }
}
