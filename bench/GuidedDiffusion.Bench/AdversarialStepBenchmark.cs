using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using GuidedDiffusion.Training;
using GuidedDiffusion.Adversarial;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Bench;

/// <summary>
/// The extra cost of adversarial training: a plain and an adversarial <see cref="ClassifierTrainer"/> on identical
/// models step alternately on the same fixed noised batch (so load changes on a shared machine hit both alike), and the
/// ratio of their step times is reported per pair (median) and of the medians, in wall-clock and in process CPU time.
/// Model: the Fashion-MNIST demo classifier (32×32, width 64, channel_mult 1,2,2); defaults: batch 32, the reference attack.
/// Last line: one JSON object.
/// </summary>
internal static class AdversarialStepBenchmark
{
    public static int Run(string[] args)
    {
        var a = Args.Parse(args);
        // The Fashion-MNIST demo classifier, exactly as classifier-train's demo builds it.
        var classifier = DemoPreset.Classifier(new ClassifierConfig { NumClasses = 10 });
        var attack = new L2PgdOptions { Steps = a.Int("attack_steps", 7) };
        var precision = TrainingPrecisions.Parse(a.Str("precision", "fp32"));
        int batch = a.Int("batch_size", 32), warmup = a.Int("warmup", 1), pairs = a.Int("pairs", 6), threads = a.Int("threads", 2);
        torch.set_num_threads(threads);
        double loadBefore = LoadAverage();

        var diffusion = new DiffusionConfig().Build();
        var training = new TrainingConfig { Data = new() { BatchSize = batch }, Precision = new() { Mode = precision } };
        ClassifierTrainer Trainer(L2PgdOptions? adversarial)
        {
            manual_seed(0);
            var model = new EncoderUNet(classifier);
            if (precision.TrunkType() is { } trunkType) model.ConvertTrunkTo(trunkType);
            return new ClassifierTrainer(model, diffusion, training with { Objective = training.Objective with { Adversarial = adversarial } }, classifier.NumClasses!.Value);
        }
        using var plain = Trainer(null);
        using var robust = Trainer(attack);
        using var images = rand(new long[] { batch, 3, classifier.ImageSize, classifier.ImageSize }, generator: new Generator(1)) * 2 - 1;
        using var labels = randint(0, classifier.NumClasses!.Value, new long[] { batch }, generator: new Generator(2));

        var wall = new Dictionary<string, List<double>> { ["plain"] = [], ["adversarial"] = [] };
        var cpu = new Dictionary<string, List<double>> { ["plain"] = [], ["adversarial"] = [] };
        var process = Process.GetCurrentProcess();
        for (int i = 0; i < warmup + pairs; i++)
            foreach (var (name, trainer) in new[] { ("plain", plain), ("adversarial", robust) })
            {
                process.Refresh();
                var cpuStart = process.TotalProcessorTime;
                var clock = Stopwatch.StartNew();
                trainer.Step(images, labels);
                trainer.Metrics.Clear();
                clock.Stop();
                process.Refresh();
                if (i >= warmup)
                {
                    wall[name].Add(clock.Elapsed.TotalSeconds);
                    cpu[name].Add((process.TotalProcessorTime - cpuStart).TotalSeconds);
                }
                Console.Error.Write($"\rpair {i + 1}/{warmup + pairs} {name}: {clock.Elapsed.TotalSeconds:0.000} s      ");
            }
        Console.Error.WriteLine();

        static double Median(IEnumerable<double> values)
        {
            var sorted = values.Order().ToArray();
            return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
        }
        double PairRatio(Dictionary<string, List<double>> times) => Median(times["adversarial"].Zip(times["plain"], (r, p) => r / p));
        var result = new Dictionary<string, object>
        {
            ["benchmark"] = "adversarial-step",
            ["cpu"] = CpuModel(),
            ["processors"] = Environment.ProcessorCount,
            ["threads"] = threads,
            ["image_size"] = classifier.ImageSize,
            ["classifier_width"] = classifier.Width,
            ["precision"] = precision.Spelling(),
            ["batch_size"] = batch,
            ["attack"] = attack.Describe(),
            ["pairs"] = pairs,
            ["load_average_1min_before"] = loadBefore,
            ["load_average_1min_after"] = LoadAverage(),
            ["plain_median_s"] = Math.Round(Median(wall["plain"]), 4),
            ["adversarial_median_s"] = Math.Round(Median(wall["adversarial"]), 4),
            ["ratio_of_medians_wall"] = Math.Round(Median(wall["adversarial"]) / Median(wall["plain"]), 3),
            ["median_pair_ratio_wall"] = Math.Round(PairRatio(wall), 3),
            ["plain_median_cpu_s"] = Math.Round(Median(cpu["plain"]), 4),
            ["adversarial_median_cpu_s"] = Math.Round(Median(cpu["adversarial"]), 4),
            ["median_pair_ratio_cpu"] = Math.Round(PairRatio(cpu), 3),
        };
        Console.WriteLine(JsonSerializer.Serialize(result));
        return 0;
    }

    private static double LoadAverage() =>
        double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture);

    private static string CpuModel() =>
        File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
}
