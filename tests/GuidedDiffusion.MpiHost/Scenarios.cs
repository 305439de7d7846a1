using GuidedDiffusion.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.MpiHost;

/// <summary>Checks run on every rank; a failed check throws, which aborts the whole job.</summary>
internal static class Scenarios
{
    public static IReadOnlyDictionary<string, Action<ICommunicator>> All { get; } = new Dictionary<string, Action<ICommunicator>>
    {
        ["collectives"] = Collectives,
        ["broadcast-module"] = BroadcastModule,
        ["gradients"] = Gradients,
        ["throw"] = Throw,
    };

    /// <summary>All-reduce sum/mean of tensors and doubles, all-gather, broadcasts, barrier.</summary>
    private static void Collectives(ICommunicator communicator)
    {
        using var scope = NewDisposeScope();
        var rank = communicator.Rank;
        var size = communicator.WorldSize;
        var ranksSum = size * (size + 1) / 2; // Σ (r + 1)

        var summed = tensor(new float[] { 1, 2, 3, 4 }) * (rank + 1);
        communicator.AllReduceSum(summed);
        ExpectEqual(new float[] { 1, 2, 3, 4 }.Select(v => v * ranksSum).ToArray(), summed.data<float>().ToArray(), "AllReduceSum float32");

        var averaged = tensor(new float[] { 1, 2, 3, 4 }) * (rank + 1);
        communicator.AllReduceMean(averaged);
        ExpectEqual(new float[] { 1, 2, 3, 4 }.Select(v => v * ranksSum / (float)size).ToArray(), averaged.data<float>().ToArray(), "AllReduceMean float32");

        // A view into a larger tensor: only the view's elements may change.
        var backing = zeros(10);
        var window = backing.narrow(0, 3, 4);
        window.fill_(rank + 1);
        communicator.AllReduceSum(window);
        ExpectEqual(new float[] { 0, 0, 0, ranksSum, ranksSum, ranksSum, ranksSum, 0, 0, 0 }, backing.data<float>().ToArray(), "AllReduceSum of a narrow view");

        var longs = tensor(new long[] { rank, 10 });
        communicator.AllReduceSum(longs);
        ExpectEqual(new long[] { size * (size - 1) / 2, 10L * size }, longs.data<long>().ToArray(), "AllReduceSum int64");

        var metrics = new double[] { rank, 1.5 };
        communicator.AllReduceMean(metrics);
        ExpectEqual(new[] { (size - 1) / 2.0, 1.5 }, metrics, "AllReduceMean double[]");

        ExpectEqual(Enumerable.Range(0, size).Select(r => (long)r * 100).ToArray(), communicator.AllGather((long)rank * 100), "AllGather long");
        ExpectEqual(Enumerable.Range(0, size).Select(r => r + 0.25).ToArray(), communicator.AllGather(rank + 0.25), "AllGather double");

        var broadcast = full(new long[] { 2, 3 }, rank == 0 ? 7f : -1f);
        communicator.Broadcast(broadcast, root: 0);
        ExpectEqual(Enumerable.Repeat(7f, 6).ToArray(), broadcast.data<float>().ToArray(), "Broadcast tensor from rank 0");

        var fromLast = full(new long[] { 3 }, (double)rank, dtype: bfloat16);
        communicator.Broadcast(fromLast, root: size - 1);
        ExpectEqual(Enumerable.Repeat((float)(size - 1), 3).ToArray(), fromLast.to_type(ScalarType.Float32).data<float>().ToArray(), "Broadcast bfloat16 from the last rank");

        var strided = arange(6, dtype: float32).view(2, 3).t();
        if (rank != 0)
        {
            strided.zero_();
        }
        communicator.Broadcast(strided, root: 0);
        ExpectEqual(new float[] { 0, 3, 1, 4, 2, 5 }, strided.contiguous().data<float>().ToArray(), "Broadcast of a strided view");

        var text = communicator.Broadcast(rank == 0 ? "config ✓ from rank 0" : null);
        Expect(text == "config ✓ from rank 0", $"Broadcast string gave '{text}'");
        var bytes = communicator.Broadcast(rank == 0 ? new byte[] { 1, 2, 3 } : null);
        ExpectEqual(new byte[] { 1, 2, 3 }, bytes, "Broadcast bytes");
        var empty = communicator.Broadcast(rank == 0 ? Array.Empty<byte>() : null);
        Expect(empty.Length == 0, "Broadcast of empty bytes");

        // Open MPI installs signal handlers at MPI_Init; .NET needs its own SIGSEGV handling for null references.
        try
        {
            string? missing = rank < 0 ? "never" : null;
            _ = missing!.Length;
            throw new InvalidOperationException("expected a NullReferenceException");
        }
        catch (NullReferenceException)
        {
        }

        communicator.Barrier();
    }

    /// <summary>Differently seeded modules become identical after BroadcastParameters.</summary>
    private static void BroadcastModule(ICommunicator communicator)
    {
        using var scope = NewDisposeScope();
        manual_seed(1000 + communicator.Rank);
        var model = TinyModel();
        communicator.BroadcastParameters(model);
        manual_seed(1000);
        var expected = TinyModel();
        foreach (var (actual, wanted) in model.parameters().Zip(expected.parameters()))
        {
            Expect(actual.equal(wanted).all().item<bool>(), "a parameter differs from rank 0's after BroadcastParameters");
            Expect(actual.requires_grad, "BroadcastParameters cleared requires_grad");
        }
    }

    /// <summary>Both reduction strategies, with buckets that split parameters, give the mean gradient.</summary>
    private static void Gradients(ICommunicator communicator)
    {
        using var scope = NewDisposeScope();
        var size = communicator.WorldSize;
        manual_seed(7);
        var model = TinyModel();

        // What the mean should be: every rank can compute every rank's gradient itself.
        var expected = model.parameters().Select(p => zeros_like(p)).ToArray();
        for (var r = 0; r < size; r++)
        {
            model.zero_grad();
            Loss(model, r).backward();
            foreach (var (sum, p) in expected.Zip(model.parameters()))
            {
                sum.add_(p.grad!);
            }
        }
        foreach (var sum in expected)
        {
            sum.div_(size);
        }

        var cases = new (GradientReduction Strategy, long BucketBytes)[]
        {
            (GradientReduction.Bucketed, GradientAllReducer.DefaultBucketBytes),
            (GradientReduction.Bucketed, 40), // 10 floats: parameters straddle buckets
            (GradientReduction.InPlace, GradientAllReducer.DefaultBucketBytes),
            (GradientReduction.Auto, GradientAllReducer.DefaultBucketBytes),
        };
        foreach (var (strategy, bucketBytes) in cases)
        {
            using var reducer = new GradientAllReducer(communicator, model.parameters(), bucketBytes, strategy);
            model.zero_grad();
            Loss(model, communicator.Rank).backward();
            reducer.AllReduceMean();
            foreach (var (wanted, p) in expected.Zip(model.parameters()))
            {
                Expect(allclose(p.grad!, wanted, rtol: 1e-5, atol: 1e-6),
                    $"{strategy} (bucket {bucketBytes} B, {reducer.BucketCount} buckets): gradient differs from the mean");
            }
        }
    }

    /// <summary>Rank 1 fails while rank 0 waits in a barrier: the job must end, not hang.</summary>
    private static void Throw(ICommunicator communicator)
    {
        if (communicator.Rank == 1)
        {
            throw new InvalidOperationException("deliberate failure on one rank");
        }
        communicator.Barrier();
        Thread.Sleep(TimeSpan.FromMinutes(5));
    }

    private static nn.Module<Tensor, Tensor> TinyModel() =>
        nn.Sequential(("fc1", nn.Linear(5, 8)), ("act", nn.ReLU()), ("fc2", nn.Linear(8, 3)));

    private static Tensor Loss(nn.Module<Tensor, Tensor> model, int rank)
    {
        var generator = new Generator((ulong)(100 + rank));
        var x = randn(new long[] { 4, 5 }, generator: generator);
        var labels = randint(0, 3, new long[] { 4 }, generator: generator);
        return nn.functional.cross_entropy(model.call(x), labels);
    }

    private static void ExpectEqual<T>(T[] expected, T[] actual, string what)
    {
        Expect(expected.SequenceEqual(actual), $"{what}: expected [{string.Join(", ", expected)}], got [{string.Join(", ", actual)}]");
    }

    private static void Expect(bool condition, string message)
    {
        if (!condition)
        {
            throw new InvalidOperationException(message);
        }
    }
}
