using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Adversarial;

/// <summary>
/// logits = W·flatten(x) + b, ignoring t: a classifier small enough to train in milliseconds, whose samples are
/// independent and deterministic, so the attack's rules can be checked one sample at a time.
/// </summary>
public sealed class LinearProbe : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Linear fc;

    public LinearProbe(long features, long classes) : base(nameof(LinearProbe))
    {
        fc = nn.Linear(features, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor t) => fc.forward(x.flatten(1));

    /// <summary>Images [n, 3, 4, 4]: one Gaussian cluster per class (unit noise), and their labels.</summary>
    public static (Tensor X, Tensor Y) Clusters(int n, Tensor means, Generator generator)
    {
        var y = randint(0, means.shape[0], [n], generator: generator);
        var x = means.index_select(0, y) + randn([n, 48], generator: generator);
        return (x.view(n, 3, 4, 4), y);
    }

    /// <summary>
    /// A probe trained on three clusters whose means lie about 2.5 apart (≈ 85 % accuracy, so an L2 attack of radius ~2
    /// flips most samples, some after one step, some after several), with a fresh test batch of <paramref name="testSize"/>.
    /// </summary>
    public static (LinearProbe Probe, Tensor X, Tensor Y) Trained(int testSize)
    {
        var generator = new Generator(7);
        // ‖μ_a − μ_b‖ ≈ c·sqrt(2·48) for Gaussian means of scale c.
        var means = randn([3, 48], generator: generator) * (2.5 / Math.Sqrt(96));
        manual_seed(1);
        var probe = new LinearProbe(48, 3);
        var (x, y) = Clusters(600, means, generator);
        for (int i = 0; i < 300; i++)
        {
            using var scope = NewDisposeScope();
            foreach (var p in probe.parameters()) p.grad = null;
            nn.functional.cross_entropy(probe.forward(x, zeros(600, dtype: ScalarType.Int64)), y).backward();
            // Plain SGD, lr 0.1 (PyTorch's update without momentum; TorchSharp's SGD.step is a C# loop whose
            // Scalars a collection may finalize mid-call, see FinalizerSafeTorch).
            using (no_grad())
                foreach (var p in probe.parameters()) p.add_(p.grad!, alpha: -0.1);
        }
        foreach (var p in probe.parameters()) p.grad = null;
        var (testX, testY) = Clusters(testSize, means, generator);
        return (probe, testX, testY);
    }
}
