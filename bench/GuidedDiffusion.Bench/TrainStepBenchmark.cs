using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using GuidedDiffusion.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Bench;

/// <summary>
/// Times full training steps (noised q_sample, forward, backward, AdamW) of a classifier on random data and
/// reports median/min seconds per step, images/s, peak and growth of RSS, and achieved GFLOP/s of the
/// convolutions and linear layers against a large fp32 matmul timed in the same process.
/// Last line: one JSON object (scripts parse it).
/// </summary>
internal static class TrainStepBenchmark
{
    public static int Run(string[] args)
    {
        var a = Args.Parse(args);
        var classifier = new ClassifierConfig
        {
            ImageSize = a.Int("image_size", 64),
            Width = a.Int("classifier_width", 128),
            Depth = a.Int("classifier_depth", 2),
            AttentionResolutions = a.Str("classifier_attention_resolutions", "32,16,8"),
            UseScaleShiftNorm = a.Bool("classifier_use_scale_shift_norm", true),
            ResblockUpdown = a.Bool("classifier_resblock_updown", true),
            Pool = a.Str("classifier_pool", "attention"),
            ChannelMult = a.Str("channel_mult", "") is { Length: > 0 } m ? m : null,
            NumHeadChannels = a.Int("num_head_channels", 64),
            NumClasses = a.Int("num_classes", 1000),
        };
        string precision = a.Str("precision", "fp32");
        int batch = a.Int("batch_size", 16), warmup = a.Int("warmup", 3), steps = a.Int("steps", 10), threads = a.Int("threads", 2);
        torch.set_num_threads(threads);

        double matmulGflops = MatmulGflops();
        manual_seed(0);
        using var model = new EncoderUNet(classifier);
        long parameters = model.parameters().Sum(p => p.numel());
        double forwardFlops = CountForwardFlops(model, classifier);
        if (precision != "fp32") model.ConvertTrunkTo(precision == "fp16" ? ScalarType.Float16 : ScalarType.BFloat16);
        var diffusion = new DiffusionConfig().Build();
        using var trainer = new ClassifierTrainer(model, diffusion, new TrainingConfig { BatchSize = batch, Precision = precision }, classifier.NumClasses);
        using var images = rand(new long[] { batch, 3, classifier.ImageSize, classifier.ImageSize }) * 2 - 1;
        using var labels = randint(0, classifier.NumClasses, new long[] { batch });

        var times = new List<double>();
        var rssTrace = new Dictionary<string, double>();
        double rssAfterWarmup = 0;
        for (int i = 0; i < warmup + steps; i++)
        {
            var clock = Stopwatch.StartNew();
            trainer.Step(images, labels);
            trainer.Metrics.Clear();
            clock.Stop();
            if (i == warmup - 1 || (warmup == 0 && i == 0)) rssAfterWarmup = Rss.CurrentMb();
            if (i >= warmup) times.Add(clock.Elapsed.TotalSeconds);
            if ((i + 1) % 50 == 0 || i + 1 == warmup + steps) rssTrace[(i + 1).ToString(CultureInfo.InvariantCulture)] = Math.Round(Rss.CurrentMb(), 1);
            Console.Error.Write($"\rstep {i + 1}/{warmup + steps}: {clock.Elapsed.TotalSeconds:0.000} s   ");
        }
        Console.Error.WriteLine();
        times.Sort();
        double median = times[times.Count / 2], min = times[0];
        // Backward costs about twice the forward (grad w.r.t. inputs and weights).
        double stepGflops = 3 * forwardFlops / 1e9;
        var result = new Dictionary<string, object>
        {
            ["benchmark"] = "train-step",
            ["image_size"] = classifier.ImageSize,
            ["classifier_width"] = classifier.Width,
            ["precision"] = precision,
            ["batch_size"] = batch,
            ["threads"] = threads,
            ["parameters"] = parameters,
            ["steps"] = steps,
            ["median_s_per_step"] = Math.Round(median, 4),
            ["min_s_per_step"] = Math.Round(min, 4),
            ["images_per_s"] = Math.Round(batch / median, 2),
            ["peak_rss_mb"] = Math.Round(Rss.PeakMb(), 1),
            ["rss_growth_mb"] = Math.Round(Rss.CurrentMb() - rssAfterWarmup, 1),
            ["rss_mb_after_step"] = rssTrace,
            ["step_gflop"] = Math.Round(stepGflops, 2),
            ["achieved_gflops"] = Math.Round(stepGflops / median, 2),
            ["matmul_fp32_gflops"] = Math.Round(matmulGflops, 2),
            ["fraction_of_matmul"] = Math.Round(stepGflops / median / matmulGflops, 3),
        };
        Console.WriteLine(JsonSerializer.Serialize(result));
        return 0;
    }

    private static Action Remover(dynamic remover) => () => remover.remove();

    /// <summary>fp32 GFLOP/s of a 2048² matmul: the machine's practical compute ceiling.</summary>
    private static double MatmulGflops()
    {
        using var scope = NewDisposeScope();
        var x = randn(2048, 2048);
        var y = randn(2048, 2048);
        matmul(x, y);
        var clock = Stopwatch.StartNew();
        int reps = 5;
        for (int i = 0; i < reps; i++) matmul(x, y).Dispose();
        return reps * 2.0 * 2048 * 2048 * 2048 / clock.Elapsed.TotalSeconds / 1e9;
    }

    /// <summary>Multiply-adds × 2 of every convolution and linear layer in one forward pass of batch 1.</summary>
    private static double CountForwardFlops(EncoderUNet model, ClassifierConfig config)
    {
        double flops = 0;
        var hooks = new List<Action>();
        foreach (var (_, module) in model.named_modules())
        {
            switch (module)
            {
                case TorchSharp.Modules.Conv2d conv:
                    hooks.Add(Remover(conv.register_forward_hook((m, input, output) =>
                    {
                        var w = conv.weight!;
                        flops += 2.0 * output.numel() * (w.shape[1] * w.shape[2] * w.shape[3]);
                        return output;
                    })));
                    break;
                case TorchSharp.Modules.Conv1d conv1:
                    hooks.Add(Remover(conv1.register_forward_hook((m, input, output) =>
                    {
                        var w = conv1.weight!;
                        flops += 2.0 * output.numel() * (w.shape[1] * w.shape[2]);
                        return output;
                    })));
                    break;
                case TorchSharp.Modules.Linear linear:
                    hooks.Add(Remover(linear.register_forward_hook((m, input, output) =>
                    {
                        flops += 2.0 * output.numel() * linear.weight!.shape[1];
                        return output;
                    })));
                    break;
            }
        }
        using (var scope = NewDisposeScope())
        using (no_grad())
            model.forward(zeros(1, 3, config.ImageSize, config.ImageSize), zeros(1, dtype: ScalarType.Int64));
        foreach (var remove in hooks) remove();
        return flops;
    }
}

/// <summary>Resident memory of this process from /proc/self/status.</summary>
internal static class Rss
{
    public static double CurrentMb() => Read("VmRSS:");
    public static double PeakMb() => Read("VmHWM:");

    private static double Read(string key)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return double.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0;
        return double.NaN;
    }
}

/// <summary>--name value pairs (snake_case, as the CLI spells them).</summary>
internal sealed class Args
{
    private readonly Dictionary<string, string> _values;

    private Args(Dictionary<string, string> values) => _values = values;

    public static Args Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"unexpected argument '{args[i]}'");
            var name = args[i][2..].Replace('-', '_');
            values[name] = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : "true";
        }
        return new Args(values);
    }

    public string Str(string name, string fallback) => _values.GetValueOrDefault(name, fallback);
    public int Int(string name, int fallback) => _values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
    public bool Bool(string name, bool fallback) => _values.TryGetValue(name, out var v) ? v.ToLowerInvariant() is "true" or "1" or "yes" or "t" or "y" : fallback;
}
