using System.Diagnostics;
using System.Text.Json;
using GuidedDiffusion.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Bench;

/// <summary>
/// Times the gradient all-reduce of the 64×64 reference classifier (default flags: 41,287,016 float32
/// parameters in 191 tensors) across MPI ranks: the raw transport on one flat tensor, then
/// <see cref="GradientAllReducer"/> bucketed at 128 MB and 25 MB, and in place per parameter.
/// Launch: <c>mpiexec -n 2 --allow-run-as-root dotnet GuidedDiffusion.Bench.dll allreduce</c>.
/// </summary>
public static class AllReduceBenchmark
{
    private const string ManifestPath = "tests/GuidedDiffusion.Tests/Reference/models/full_size/classifier_defaults_64.json";

    /// <summary>Runs the benchmark; rank 0 prints a markdown table. Returns the exit code.</summary>
    public static int Run(string[] args)
    {
        var iterations = int.Parse(Option(args, "--iterations") ?? "10");
        var manifest = Option(args, "--layout") ?? FindManifest();
        using var communicator = Communicators.Create(Communicators.Auto);
        var threads = TorchThreads.Configure(communicator);
        return Communicators.RunGuarded(communicator, () => Measure(communicator, ReadShapes(manifest), iterations, threads), printStackTrace: true);
    }

    private static int Measure(ICommunicator communicator, long[][] shapes, int iterations, int threads)
    {
        var parameters = shapes.Select(shape => empty(shape).requires_grad_(true)).ToArray();
        foreach (var parameter in parameters)
        {
            parameter.grad = full(parameter.shape, communicator.Rank + 1f);
        }
        var elements = parameters.Sum(p => p.numel());
        using var flat = full(elements, communicator.Rank + 1f);

        var methods = new List<(string Name, int Messages, Action Reduce)>
        {
            ("flat tensor, AllReduceSum (transport only)", 1, () => communicator.AllReduceSum(flat)),
        };
        var reducers = new List<GradientAllReducer>();
        foreach (var (strategy, bucketBytes) in new[]
        {
            (GradientReduction.Bucketed, 128L << 20),
            (GradientReduction.Bucketed, 25L << 20),
            (GradientReduction.InPlace, GradientAllReducer.DefaultBucketBytes),
        })
        {
            var reducer = new GradientAllReducer(communicator, parameters, bucketBytes, strategy);
            reducers.Add(reducer);
            var name = strategy == GradientReduction.InPlace
                ? "GradientAllReducer in place, per parameter"
                : $"GradientAllReducer bucketed {bucketBytes >> 20} MB";
            methods.Add((name, reducer.MessageCount, reducer.AllReduceMean));
        }
        var timings = Time(communicator, iterations, methods.Select(m => m.Reduce).ToArray());
        reducers.ForEach(r => r.Dispose());
        var rows = methods.Select((m, i) => (m.Name, m.Messages, Milliseconds: timings[i])).ToList();

        // Every rank started from rank + 1; means of means stay at the mean of 1..N.
        var expected = (communicator.WorldSize + 1) / 2f;
        var wrong = parameters.Count(p => !p.grad!.eq(expected).all().item<bool>());
        if (wrong > 0)
        {
            throw new InvalidOperationException($"{wrong} gradients are not the mean {expected} after the benchmark");
        }

        if (communicator.IsMain)
        {
            Console.WriteLine($"All-reduce of {elements:N0} float32 ({elements * 4 / 1e6:F0} MB) in {parameters.Length} tensors, " +
                $"{communicator.WorldSize} ranks, {threads} torch thread(s) per rank, {iterations} iterations (after 2 warm-up), methods interleaved:");
            Console.WriteLine();
            Console.WriteLine("| method | messages | median ms | min ms | max ms | GB/s (median) |");
            Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: |");
            foreach (var (name, messages, ms) in rows)
            {
                var sorted = ms.Order().ToArray();
                var median = sorted[sorted.Length / 2];
                Console.WriteLine($"| {name} | {messages} | {median:F1} | {sorted[0]:F1} | {sorted[^1]:F1} | {elements * 4 / median / 1e6:F2} |");
            }
        }
        return 0;
    }

    /// <summary>
    /// Milliseconds per call of each action, the actions interleaved within every iteration so that load
    /// from other processes on the machine affects them alike; a barrier before each call so that every
    /// rank starts together.
    /// </summary>
    private static double[][] Time(ICommunicator communicator, int iterations, Action[] actions)
    {
        var result = actions.Select(_ => new double[iterations]).ToArray();
        for (var i = -2; i < iterations; i++)
        {
            for (var a = 0; a < actions.Length; a++)
            {
                communicator.Barrier();
                var stopwatch = Stopwatch.StartNew();
                actions[a]();
                stopwatch.Stop();
                if (i >= 0)
                {
                    result[a][i] = stopwatch.Elapsed.TotalMilliseconds;
                }
            }
        }
        // Report the slowest rank's time: the training step waits for it.
        foreach (var times in result)
        {
            for (var i = 0; i < iterations; i++)
            {
                times[i] = communicator.AllGather(times[i]).Max();
            }
        }
        return result;
    }

    private static long[][] ReadShapes(string manifest)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(manifest));
        // state_dict_keys: [[key, [shape...], dtype], ...]
        return document.RootElement.GetProperty("state_dict_keys").EnumerateArray()
            .Select(entry => entry[1].EnumerateArray().Select(extent => extent.GetInt64()).ToArray())
            .ToArray();
    }

    private static string FindManifest()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, ManifestPath);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        throw new FileNotFoundException($"Cannot find {ManifestPath} above {AppContext.BaseDirectory}; pass --layout PATH.", ManifestPath);
    }

    private static string? Option(string[] args, string name)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
    }
}
