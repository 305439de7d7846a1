using GuidedDiffusion.Diffusion.Solvers;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Guidance;

/// <summary>
/// Parity of <see cref="DpmSolver"/> and <see cref="UniPC"/> with the published implementations
/// (Reference/solvers, made by running dpm_solver_pytorch.py and uni_pc.py on a tiny seeded model): every solver,
/// order, method and spacing, guided (classifier scale 1, through <see cref="ClassifierGuidance"/>) and unguided, with
/// lower_order_final on and off and with dynamic thresholding; every intermediate state, the model time of every
/// network evaluation, and the number of evaluations.
/// </summary>
/// <remarks>
/// <para><b>Tolerance.</b> The expected states come from the reference code run in float64 end to end. The same code run
/// in float32 (the way everyone runs it) differs from that at state i by e_i, recorded in the JSON
/// (<c>f32_vs_f64_max_abs_per_state</c>): that is the float32 rounding error of the reference itself, amplified by
/// the ODE exactly as ours is. Our port runs the tensors in float32 and the scalars in float64, so its rounding
/// errors are of the same kind and size but fall differently; we require max|ours − float64 reference| ≤ 4·e_i +
/// 2e-6·(1 + max|x_i|). The factor 4 covers two independent float32 error paths of equal size (ours and the
/// reference's, each ≤ e_i if they were identical); the relative floor covers states where e_i happens to be tiny and
/// the float32 storage of the expected states (≤ 6e-8·|x|). A wrong coefficient, order, time grid or guidance term
/// changes the states by 1e-3 to 1 — far above every tolerance (the largest is ~3e-3, for a diverging
/// noise-prediction case whose states reach |x| ≈ 96).</para>
/// <para>Model times: ours are float64 rounded to float32 when handed to the model (≤ 6.1e-5 at t ≈ 1000); the
/// reference's float32 run is off by <c>f32_vs_f64_max_abs_model_time</c> itself. Tolerance 1.25e-4.</para>
/// </remarks>
public class SolverParityTests
{
    private static readonly Lazy<Dictionary<string, Tensor>> File = new(() =>
    {
        var tensors = Reference.Tensors("solvers/solvers.safetensors");
        foreach (var t in tensors.Values) t.DetachFromDisposeScope();
        return tensors;
    });

    public static TheoryData<string> Cases => new(SolverCase.All.Select(c => c.Name));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Solver_MatchesReference(string name)
    {
        var c = SolverCase.All.Single(s => s.Name == name);
        var (states, modelTimes) = Run(c, c.Options);
        var expected = File.Value[$"{name}/states"];
        // Multistep solvers report x_T first; ours reports after each step only.
        int offset = (int)expected.shape[0] - states.Count;
        Assert.Equal(c.Options.Method == SolverMethod.Multistep ? 1 : 0, offset);
        for (int i = 0; i < states.Count; i++)
        {
            var e = expected[i + offset];
            double scale = e.abs().max().item<float>();
            double tolerance = 4 * c.Float32Error[i + offset] + 2e-6 * (1 + scale);
            Reference.AssertClose(states[i], e, 0, tolerance, $"{name}: state after step {i + 1}");
        }
        var times = File.Value[$"{name}/model_times"].Float64();
        Assert.Equal(c.Nfe, modelTimes.Count);
        Reference.AssertClose(modelTimes.ToArray(), times, 0, 1.25e-4, $"{name}: model times");
    }

    [Fact]
    public void Reference_CoversEverySolverMethodSpacingAndOrder()
    {
        var all = SolverCase.All;
        foreach (var kind in Enum.GetValues<SolverKind>())
            foreach (var skip in Enum.GetValues<SkipType>())
                Assert.Contains(all, c => c.Options.Kind == kind && c.Options.SkipType == skip && c.Scale > 0);
        foreach (var (kind, method, order) in new[]
                 {
                     (SolverKind.DpmSolverPlusPlus, SolverMethod.Multistep, 2), (SolverKind.DpmSolverPlusPlus, SolverMethod.Multistep, 3),
                     (SolverKind.DpmSolverPlusPlus, SolverMethod.Singlestep, 2), (SolverKind.DpmSolver, SolverMethod.Singlestep, 2),
                     (SolverKind.DpmSolver, SolverMethod.Singlestep, 3), (SolverKind.DpmSolver, SolverMethod.Multistep, 2),
                     (SolverKind.DpmSolver, SolverMethod.Multistep, 3), (SolverKind.UniPC, SolverMethod.Multistep, 2),
                     (SolverKind.UniPC, SolverMethod.Multistep, 3),
                 })
        {
            Assert.Contains(all, c => c.Options.Kind == kind && c.Options.Method == method && c.Options.Order == order && c.Scale > 0);
            Assert.Contains(all, c => c.Options.Kind == kind && c.Options.Method == method && c.Scale == 0);
        }
        foreach (var variant in Enum.GetValues<UniPCVariant>()) Assert.Contains(all, c => c.Options.Kind == SolverKind.UniPC && c.Options.Variant == variant);
        Assert.Contains(all, c => c.Options.Thresholding && c.Options.Kind == SolverKind.UniPC);
        Assert.Contains(all, c => c.Options.Thresholding && c.Options.Method == SolverMethod.Singlestep);
        Assert.Contains(all, c => !c.Options.LowerOrderFinal && c.Options.Kind == SolverKind.UniPC);
        Assert.Contains(all, c => !c.Options.LowerOrderFinal && c.Options.Kind == SolverKind.DpmSolverPlusPlus && c.Options.Steps < 10);
        Assert.Contains(all, c => c.Options.Kind == SolverKind.UniPC && !c.Options.UniPCPredictX0);
    }

    /// <summary>Runs a case as the reference did; returns every state after a step and the model times seen.</summary>
    internal static (List<Tensor> States, List<double> ModelTimes) Run(SolverCase c, SolverOptions options, GuidanceInterval? interval = null)
    {
        var file = File.Value;
        var models = new TinySolverModels(file);
        var alphasCumprod = file["alphas_cumprod"].Float64();
        // DPM-Solver clips λ below −5.1, UniPC does not; the linear 1000-step schedule has no such step, so both agree here.
        var schedule = new DiscreteNoiseSchedule(alphasCumprod, clipLambda: options.Kind != SolverKind.UniPC);
        var y = file["y"];
        NoisePredictionFn eps = SolverModels.FromDenoiser(models.Denoise, schedule, null);
        if (c.Scale > 0)
        {
            var condFn = new ClassifierGuidance(models.Classifier, c.Scale).AsConditionFn();
            if (interval is { } range) condFn = range.Restrict(condFn);
            eps = SolverModels.WithGuidance(eps, condFn, schedule, y);
        }
        var xT = file["x_T"].to_type(ScalarType.Float32);
        var states = new List<Tensor>();
        void Record(SolverStep step) => states.Add(step.X.clone().DetachFromDisposeScope());
        using var scope = NewDisposeScope();
        if (options.Kind == SolverKind.UniPC) UniPC.Sample(eps, schedule, xT, options, Record);
        else DpmSolver.Sample(eps, schedule, xT, options, Record);
        return (states, models.ModelTimes);
    }
}
