using GuidedDiffusion.Cli;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Tests.Support;
using GuidedDiffusion.Adversarial;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Adversarial;

public class L2PgdAttackTests
{
    private static readonly GaussianDiffusion Linear1000 = new DiffusionConfig().Build();

    private static Tensor Zeros(int n) => zeros(n, dtype: ScalarType.Int64);

    private static Tensor Norms(Tensor x) => x.flatten(1).norm(1);

    [Fact]
    public void Project_KeepsEveryPerturbationInsideTheBall()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(3);
        int n = 64;
        var origin = randn([n, 3, 16, 16], generator: g);
        // Perturbations from 1e-3 to 1e3 in length against radii from 0.01 to 2: inside, on and far outside the ball.
        var lengths = pow(10.0, rand([n], generator: g) * 6 - 3);
        var delta = randn([n, 3, 16, 16], generator: g);
        delta = delta / Norms(delta).view(n, 1, 1, 1) * lengths.view(n, 1, 1, 1);
        var radius = rand([n], generator: g) * 2 + 0.01;

        var projected = L2PgdAttack.Project(origin + delta, origin, radius);
        var after = Norms(projected - origin).Float64();
        var before = Norms(delta).Float64();
        var r = radius.Float64();
        bool sawInside = false, sawOutside = false;
        for (int i = 0; i < n; i++)
        {
            // The reference's own check: every perturbation within eps + 1e-5.
            Assert.True(after[i] <= r[i] + 1e-5, $"sample {i}: ‖δ‖ {after[i]} > radius {r[i]}");
            if (before[i] <= r[i])
            {
                sawInside = true;
                // Left alone (up to float32 rounding of origin + δ − origin, ≤ 1e-6 for |x| ≲ 4).
                Reference.AssertClose(projected[i] - origin[i], delta[i], 0, 1e-6, $"sample {i} inside the ball");
            }
            else
            {
                sawOutside = true;
                // Pulled straight back to the sphere: the same direction, length r.
                Assert.Equal(r[i], after[i], 1e-5 * Math.Max(1, r[i]));
                Reference.AssertClose(projected[i] - origin[i], delta[i] * (r[i] / before[i]), 0, 1e-6, $"sample {i} outside the ball");
            }
        }
        Assert.True(sawInside && sawOutside);
    }

    [Fact]
    public void Step_MovesAlongThePerSampleNormalisedGradient()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(4);
        int n = 8;
        var x = randn([n, 3, 8, 8], generator: g);
        // Gradients of very different sizes: each sample's step must have exactly its own step length.
        var scale = pow(10.0, arange(n, dtype: ScalarType.Float32) - 4).view(n, 1, 1, 1);
        var gradient = randn([n, 3, 8, 8], generator: g) * scale;
        var stepSize = rand([n], generator: g) + 0.1;

        var moved = L2PgdAttack.Step(x, gradient, stepSize);
        var expected = gradient / Norms(gradient).view(n, 1, 1, 1) * stepSize.view(n, 1, 1, 1);
        // float32: x' − x carries the rounding of x' (|x| ≲ 4, so ≤ 1e-6).
        Reference.AssertClose(moved - x, expected, 0, 1e-6, "step");
        Reference.AssertClose(Norms(moved - x), stepSize, 1e-5, 0, "step lengths");

        // A gradient that overflowed (fp16) gives no direction: that sample stays put.
        gradient[2] = full([3, 8, 8], double.PositiveInfinity);
        var guarded = L2PgdAttack.Step(x, gradient, stepSize);
        Assert.True(guarded[2].equal(x[2]).all().item<bool>());
        Assert.True(guarded.isfinite().all().item<bool>());
    }

    [Fact]
    public void FirstStep_FollowsTheNormalisedCrossEntropyGradient()
    {
        using var scope = NewDisposeScope();
        var (probe, x, _) = LinearProbe.Trained(16);
        // Labels the probe predicts: every sample is correct at the start, so every sample takes the step.
        Tensor y;
        using (no_grad()) y = probe.forward(x, Zeros(16)).argmax(-1);
        var options = new L2PgdOptions { Eps = 100, Steps = 1, StepSize = 0.3 };
        var result = new L2PgdAttack(probe, options, Linear1000).Run(x, y, Zeros(16));

        var input = x.detach().requires_grad_(true);
        var loss = nn.functional.cross_entropy(probe.forward(input, Zeros(16)), y, reduction: nn.Reduction.Sum);
        var gradient = autograd.grad([loss], [input])[0];
        var expected = x + 0.3 * gradient / Norms(gradient).view(16, 1, 1, 1);
        Reference.AssertClose(result.Adversarial, expected, 0, 1e-6, "one step");
        Assert.Equal(1, result.StepsTaken);
        Assert.True(result.InitiallyCorrect!.all().item<bool>());
    }

    [Fact]
    public void MisclassifiedSamples_AreNotAttackedFurther()
    {
        using var scope = NewDisposeScope();
        var (probe, x, y) = LinearProbe.Trained(64);
        var t = Zeros(64);
        Tensor Correct(Tensor input)
        {
            using var noGrad = no_grad();
            return probe.forward(input, t).argmax(-1).eq(y);
        }
        var runs = Enumerable.Range(0, 8)
            .Select(steps => new L2PgdAttack(probe, new L2PgdOptions { Eps = 2, Steps = steps }, Linear1000).Run(x, y, t).Adversarial)
            .ToArray();

        // The step at which each sample first became misclassified (0: from the start; -1: never within 7 steps).
        var flippedAt = Enumerable.Repeat(-1, 64).ToArray();
        for (int steps = 0; steps < runs.Length; steps++)
        {
            var correct = Correct(runs[steps]).data<bool>().ToArray();
            for (int i = 0; i < 64; i++)
                if (!correct[i] && flippedAt[i] < 0) flippedAt[i] = steps;
        }
        Assert.Contains(0, flippedAt);
        Assert.Contains(flippedAt, s => s >= 2);
        for (int i = 0; i < 64; i++)
        {
            if (flippedAt[i] < 0) continue;
            // From the step it was fooled on, the sample never moves again, whatever the budget.
            for (int steps = flippedAt[i]; steps < runs.Length; steps++)
                Assert.True(runs[steps][i].equal(runs[flippedAt[i]][i]).all().item<bool>(),
                    $"sample {i}, misclassified after {flippedAt[i]} steps, moved again at {steps} steps");
        }
    }

    [Fact]
    public void Attack_LeavesTheParametersGradientsUntouched()
    {
        using var scope = NewDisposeScope();
        var (probe, x, y) = LinearProbe.Trained(16);
        var before = probe.parameters().Select(p => (p.grad = full_like(p, 0.25)).clone()).ToArray();
        new L2PgdAttack(probe, new L2PgdOptions { Eps = 2 }, Linear1000).Run(x, y, Zeros(16));
        var after = probe.parameters().Select(p => p.grad!).ToArray();
        for (int i = 0; i < before.Length; i++)
            Assert.True(after[i].equal(before[i]).all().item<bool>(), $"parameter {i}'s gradient changed");
    }

    [Fact]
    public void SqrtAlphaSchedule_ScalesRadiusAndStepBySqrtAlphaBar()
    {
        using var scope = NewDisposeScope();
        var t = tensor(new long[] { 0, 500, 999 });
        var constant = new L2PgdAttack(new LinearProbe(48, 3), new L2PgdOptions { Eps = 0.5 }, Linear1000);
        var scaled = new L2PgdAttack(new LinearProbe(48, 3), new L2PgdOptions { Eps = 0.5, EpsSchedule = AttackEpsSchedule.SqrtAlpha }, Linear1000);
        var sqrtAlphaBar = new[] { 0, 500, 999 }.Select(s => Linear1000.SqrtAlphasCumprod[s]).ToArray();
        Reference.AssertClose(constant.Radius(t).Float64(), [0.5, 0.5, 0.5], 0, 1e-7, "constant radius");
        Reference.AssertClose(constant.StepSizes(t).Float64(), [0.5 / 6, 0.5 / 6, 0.5 / 6], 1e-6, 0, "eps·0.5/3");
        Reference.AssertClose(scaled.Radius(t).Float64(), sqrtAlphaBar.Select(a => 0.5 * a).ToArray(), 1e-6, 0, "radius × sqrt(ᾱ_t)");
        Reference.AssertClose(scaled.StepSizes(t).Float64(), sqrtAlphaBar.Select(a => 0.5 / 6 * a).ToArray(), 1e-6, 0, "step × sqrt(ᾱ_t)");
    }

    [Theory]
    [InlineData(0.0, 7, null, "attack_eps")]
    [InlineData(double.PositiveInfinity, 7, null, "attack_eps")]
    [InlineData(0.5, -1, null, "attack_steps")]
    [InlineData(0.5, 7, 0.0, "attack_step_size")]
    public void Options_OutOfRange_NameTheFlag(double eps, int steps, double? stepSize, string flag)
    {
        var e = Assert.Throws<GuidedDiffusion.ConfigurationException>(() => new L2PgdOptions { Eps = eps, Steps = steps, StepSize = stepSize }.Validate());
        Assert.Equal(flag, e.Setting);
        Assert.StartsWith($"--{flag}:", CliErrors.Describe(e));
    }
}
