using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using GuidedDiffusion.Diagnostics;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using GuidedDiffusion.Runtime;
using GuidedDiffusion.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Bench;

/// <summary>
/// Times full training steps (noised q_sample, forward, backward, AdamW) of a classifier on random data and
/// reports them against the machine's ceiling measured in the same process: FLOPs per batch (convolutions,
/// linear layers and the attention products QKᵀ and A·V; backward counted as twice the forward), the fp32 rate of
/// a representative 3×3 convolution forward+backward and of a 2048² matmul, the shares of forward, backward and
/// optimizer and of op kinds in the forward, RSS growth, page faults and system time (getrusage), and the CPU with
/// its theoretical FMA peak (fp32 and bf16) at the reported clock; bf16 steps also against the bf16 matmul rate.
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
            AttentionResolutions = SettingList<int>.Parse(a.Str("classifier_attention_resolutions", "32,16,8"), "classifier_attention_resolutions"),
            UseScaleShiftNorm = a.Bool("classifier_use_scale_shift_norm", true),
            ResblockUpdown = a.Bool("classifier_resblock_updown", true),
            Pool = ClassifierPools.Parse(a.Str("classifier_pool", "attention")),
            ChannelMult = a.Str("channel_mult", "") is { Length: > 0 } m ? SettingList<double>.Parse(m, "channel_mult") : null,
            NumHeadChannels = a.Int("num_head_channels", 64),
            NumClasses = a.Int("num_classes", 1000),
            UseCheckpoint = a.Bool("use_checkpoint", false),
        };
        int numClasses = classifier.NumClasses!.Value;
        var cpu = CpuFeatures.Current;
        var precision = PrecisionPolicy.Resolve(TrainingPrecisions.Parse(a.Str("precision", "fp32")), a.Bool("allow_slow_bf16", false), cpu);
        int batch = a.Int("batch_size", 16), warmup = a.Int("warmup", 3), steps = a.Int("steps", 10), threads = a.Int("threads", 2);
        // --breakdown_steps 0 and --ceilings false leave out the extra passes (memory runs: the peak RSS is then the
        // training steps' own).
        int breakdownSteps = a.Int("breakdown_steps", 3) is 0 ? 0 : Math.Max(2, a.Int("breakdown_steps", 3));
        bool ceilings = a.Bool("ceilings", true);
        torch.set_num_threads(threads);

        double matmulGflops = ceilings ? Ceiling.MatmulGflops(ScalarType.Float32) : double.NaN;
        // bf16 steps are measured against bf16's own matmul rate (VDPBF16PS/AMX run at 2×+ the fp32 rate).
        bool bf16 = precision.TrunkType() == ScalarType.BFloat16;
        double matmulBf16Gflops = ceilings && bf16 ? Ceiling.MatmulGflops(ScalarType.BFloat16) : double.NaN;
        var fmaPeak = FmaPeak.Of(cpu, threads);
        double convGflops = ceilings ? Ceiling.ConvFwdBwdGflops(ScalarType.Float32, channelsLast: false) : double.NaN;
        double spinMs = ceilings ? Ceiling.IdleSpinCpuMs() : double.NaN;
        manual_seed(0);
        using var model = new EncoderUNet(classifier);
        long parameters = model.parameters().Sum(p => p.numel());
        var forwardFlops = CountForwardFlops(model, classifier, batch);
        if (precision.TrunkType() is { } trunkType) model.ConvertTrunkTo(trunkType);
        // Experiment (issue 16, "Convolutions"): every 3×3 convolution fed channels-last (NHWC) tensors, which
        // oneDNN then keeps through its output; element-wise ops and GroupNorm follow the layout.
        if (a.Bool("channels_last", false)) ChannelsLast.Apply(model);
        var diffusion = new DiffusionConfig().Build();
        using var trainer = new ClassifierTrainer(model, diffusion, new TrainingConfig { Data = new() { BatchSize = batch }, Precision = new() { Mode = precision } }, numClasses);
        using var images = rand(new long[] { batch, 3, classifier.ImageSize, classifier.ImageSize }) * 2 - 1;
        using var labels = randint(0, numClasses, new long[] { batch });

        var times = new List<double>();
        var rssTrace = new Dictionary<string, double>();
        double rssAfterWarmup = 0;
        var usageStart = ProcessUsage.Now();
        for (int i = 0; i < warmup + steps; i++)
        {
            var clock = Stopwatch.StartNew();
            trainer.Step(images, labels);
            trainer.Metrics.Clear();
            clock.Stop();
            if (i == warmup - 1 || (warmup == 0 && i == 0))
            {
                rssAfterWarmup = Rss.CurrentMb();
                usageStart = ProcessUsage.Now();
            }
            if (i >= warmup) times.Add(clock.Elapsed.TotalSeconds);
            if ((i + 1) % 50 == 0 || i + 1 == warmup + steps)
            {
                rssTrace[(i + 1).ToString(CultureInfo.InvariantCulture)] = Math.Round(Rss.CurrentMb(), 1);
                // Also on stderr, so an interrupted long run still shows its trace.
                Console.Error.WriteLine($"\nRSS after step {i + 1}: {Rss.CurrentMb():0.0} MB");
            }
            Console.Error.Write($"\rstep {i + 1}/{warmup + steps}: {clock.Elapsed.TotalSeconds:0.000} s   ");
        }
        var usage = ProcessUsage.Now().Since(usageStart);
        double rssEnd = Rss.CurrentMb();
        Console.Error.WriteLine();
        double peakRssSteps = Rss.PeakMb();
        var breakdown = breakdownSteps > 0
            ? Breakdown.Measure(model, trainer, images, labels, breakdownSteps)
            : new Breakdown.Result(double.NaN, double.NaN, double.NaN, new Dictionary<string, double>());
        times.Sort();
        double median = times[times.Count / 2], min = times[0];
        double stepGflop = 3 * forwardFlops.Total / 1e9;
        var result = new Dictionary<string, object>
        {
            ["benchmark"] = "train-step",
            ["cpu"] = cpu.Model,
            ["cpu_features"] = cpu.Summary,
            ["cpu_identity"] = cpu.Identity,
            ["image_size"] = classifier.ImageSize,
            ["classifier_width"] = classifier.Width,
            ["precision"] = precision.Spelling(),
            ["channels_last"] = a.Bool("channels_last", false),
            ["use_checkpoint"] = classifier.UseCheckpoint,
            ["batch_size"] = batch,
            ["threads"] = threads,
            ["load_average_1min"] = LoadAverage(),
            ["omp_idle_spin_cpu_ms_per_200ms"] = Math.Round(spinMs, 1),
            ["parameters"] = parameters,
            ["steps"] = steps,
            ["median_s_per_step"] = Math.Round(median, 4),
            ["min_s_per_step"] = Math.Round(min, 4),
            ["images_per_s"] = Math.Round(batch / median, 2),
            ["step_gflop"] = Math.Round(stepGflop, 1),
            ["step_gflop_attention"] = Math.Round(3 * forwardFlops.Attention / 1e9, 1),
            ["achieved_gflops"] = Math.Round(stepGflop / median, 2),
            ["conv_fwd_bwd_fp32_gflops"] = Math.Round(convGflops, 1),
            ["matmul_fp32_gflops"] = Math.Round(matmulGflops, 1),
            ["fraction_of_conv_ceiling"] = Math.Round(stepGflop / median / convGflops, 3),
            ["fraction_of_matmul"] = Math.Round(stepGflop / median / matmulGflops, 3),
            ["matmul_bf16_gflops"] = Math.Round(matmulBf16Gflops, 1),
            ["fraction_of_matmul_bf16"] = Math.Round(stepGflop / median / matmulBf16Gflops, 3),
            ["fma_peak_fp32_gflops"] = Math.Round(fmaPeak.Fp32Gflops, 1),
            ["fma_peak_bf16_gflops"] = Math.Round(fmaPeak.Bf16Gflops, 1),
            ["fma_peak_basis"] = fmaPeak.Basis,
            ["fraction_of_fma_peak"] = Math.Round(stepGflop / median / (bf16 ? fmaPeak.Bf16Gflops : fmaPeak.Fp32Gflops), 3),
            ["share_forward"] = breakdown.Forward,
            ["share_backward"] = breakdown.Backward,
            ["share_optimizer"] = breakdown.Optimizer,
            ["forward_share_by_op"] = breakdown.ForwardByOp,
            ["peak_rss_mb"] = Math.Round(Rss.PeakMb(), 1),
            ["peak_rss_mb_training_steps"] = Math.Round(peakRssSteps, 1),
            ["rss_growth_mb"] = Math.Round(rssEnd - rssAfterWarmup, 1),
            ["rss_growth_pct"] = Math.Round(100 * (rssEnd - rssAfterWarmup) / rssAfterWarmup, 2),
            ["rss_mb_after_step"] = rssTrace,
            ["minor_faults_per_step"] = usage.MinorFaults / Math.Max(1, steps),
            ["major_faults"] = usage.MajorFaults,
            ["system_cpu_s_per_step"] = Math.Round(usage.SystemSeconds / Math.Max(1, steps), 3),
            ["user_cpu_s_per_step"] = Math.Round(usage.UserSeconds / Math.Max(1, steps), 3),
        };
        // NaN marks what --ceilings false / --breakdown_steps 0 left out.
        Console.WriteLine(JsonSerializer.Serialize(result, new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
        return 0;
    }

    internal static double LoadAverage() =>
        double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture);

    private static Action Remover(dynamic remover) => () => remover.remove();

    /// <summary>
    /// Multiply-adds × 2 of every convolution and linear layer and of the attention products (QKᵀ and A·V:
    /// 2 · 2·B·H·T²·C) in one forward pass of the whole batch.
    /// </summary>
    private static (double Total, double Attention) CountForwardFlops(EncoderUNet model, ClassifierConfig config, int batch)
    {
        double flops = 0, attention = 0;
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
                case QKVAttention qkv:
                    hooks.Add(Remover(qkv.register_forward_hook((m, input, output) =>
                    {
                        // output [B, H·C, T]: QKᵀ and A·V are each B·H·T·T·C multiply-adds.
                        double products = 2 * 2.0 * output.shape[0] * output.shape[1] * output.shape[2] * output.shape[2];
                        flops += products;
                        attention += products;
                        return output;
                    })));
                    break;
            }
        }
        using (var scope = NewDisposeScope())
        using (no_grad())
            model.forward(zeros(batch, 3, config.ImageSize, config.ImageSize), zeros(batch, dtype: ScalarType.Int64));
        foreach (var remove in hooks) remove();
        return (flops, attention);
    }
}

/// <summary>
/// Where a step's time goes: forward / backward / optimizer (steps split by timing the model's forward inside
/// ForwardBackward, and ForwardBackward inside Step) and, within the forward, the op kinds by module.
/// </summary>
internal static class Breakdown
{
    public sealed record Result(double Forward, double Backward, double Optimizer, Dictionary<string, double> ForwardByOp);

    public static Result Measure(EncoderUNet model, ClassifierTrainer trainer, Tensor images, Tensor labels, int steps)
    {
        var byOp = new Dictionary<string, double> { ["convolution"] = 0, ["attention"] = 0, ["normalisation"] = 0 };
        double forward = 0, forwardBackward = 0, step = 0;
        var started = new Dictionary<nn.Module, long>(ReferenceEqualityComparer.Instance);
        var removers = new List<Action>();
        void Time(nn.Module<Tensor, Tensor> module, string kind)
        {
            removers.Add(Remove(module.register_forward_pre_hook((m, input) => { started[m] = Stopwatch.GetTimestamp(); return input; })));
            removers.Add(Remove(module.register_forward_hook((m, input, output) =>
            {
                double s = Stopwatch.GetElapsedTime(started[m]).TotalSeconds;
                byOp[kind] += s;
                return output;
            })));
        }
        foreach (var (_, module) in model.named_modules())
        {
            switch (module)
            {
                case TorchSharp.Modules.Conv2d or TorchSharp.Modules.Conv1d or TorchSharp.Modules.Linear:
                    Time((nn.Module<Tensor, Tensor>)module, "convolution");
                    break;
                case QKVAttention attention:
                    Time(attention, "attention");
                    break;
                case GroupNorm32 norm:
                    Time(norm, "normalisation");
                    break;
            }
        }
        // The trainer calls the model's forward directly (module hooks fire only through call), so the forward is
        // timed on its own, with autograd recording as in training, on a noised-like batch with random timesteps.
        using var t = randint(0, 1000, new long[] { images.shape[0] });
        for (int i = 0; i < steps; i++)
        {
            using (var scope = NewDisposeScope())
            {
                var clock = Stopwatch.StartNew();
                nn.functional.cross_entropy(model.forward(images, t).to_type(ScalarType.Float32), labels).item<float>();
                forward += clock.Elapsed.TotalSeconds;
            }
            if (i == 0) { forward = 0; foreach (var key in byOp.Keys.ToList()) byOp[key] = 0; }
        }
        foreach (var remove in removers) remove();
        for (int i = 0; i < steps; i++)
        {
            var clock = Stopwatch.StartNew();
            trainer.ForwardBackward(images, labels);
            forwardBackward += clock.Elapsed.TotalSeconds;
            trainer.Metrics.Clear();
            clock.Restart();
            trainer.Step(images, labels);
            step += clock.Elapsed.TotalSeconds;
            trainer.Metrics.Clear();
        }
        // The first forward warmed up and was discarded.
        double fwd = forward / Math.Max(1, steps - 1), fb = forwardBackward / steps, st = step / steps;
        var shares = byOp.ToDictionary(kv => kv.Key, kv => Math.Round(kv.Value / Math.Max(1, steps - 1) / fwd, 3));
        shares["element-wise and other"] = Math.Round(1 - shares.Values.Sum(), 3);
        return new Result(Math.Round(fwd / st, 3), Math.Round((fb - fwd) / st, 3), Math.Round((st - fb) / st, 3), shares);
    }

    private static Action Remove(dynamic remover) => () => remover.remove();
}

/// <summary>Feeds every 3×3 convolution NHWC tensors (a forward pre-hook; already-NHWC inputs pass through).</summary>
internal static class ChannelsLast
{
    public static void Apply(nn.Module model)
    {
        foreach (var (_, module) in model.named_modules())
            if (module is TorchSharp.Modules.Conv2d conv && conv.weight!.shape[2] == 3)
                conv.register_forward_pre_hook((m, x) => x.stride(1) == 1 ? x : x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2));
    }
}

/// <summary>The machine's compute ceilings, measured in this process.</summary>
internal static class Ceiling
{
    /// <summary>GFLOP/s of a 2048² matmul in <paramref name="dtype"/>.</summary>
    public static double MatmulGflops(ScalarType dtype, int n = 2048)
    {
        using var scope = NewDisposeScope();
        var x = randn(n, n).to_type(dtype);
        var y = randn(n, n).to_type(dtype);
        return 2.0 * n * n * n / 1e9 / Seconds(() => matmul(x, y));
    }

    /// <summary>
    /// GFLOP/s of a 3×3 convolution forward + backward (input and weight gradients: 3 × the forward's FLOPs) at
    /// the shape of the classifier's busiest layer at width 128 (batch 16, 128 → 128 channels, 32×32).
    /// </summary>
    public static double ConvFwdBwdGflops(ScalarType dtype, bool channelsLast, long batch = 16, long channels = 128, long side = 32)
    {
        using var scope = NewDisposeScope();
        var x = randn(batch, channels, side, side).to_type(dtype);
        var w = randn(channels, channels, 3, 3).to_type(dtype) * 0.05;
        // TorchSharp has no memory_format argument: NHWC strides via a permuted copy.
        if (channelsLast) x = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        x.requires_grad_(true);
        w.requires_grad_(true);
        double flops = 3 * 2.0 * batch * channels * side * side * channels * 9;
        return flops / 1e9 / Seconds(() =>
        {
            var y = nn.functional.conv2d(x, w, padding: new long[] { 1, 1 });
            y.sum().backward();
            x.grad!.Dispose();
            w.grad!.Dispose();
            x.grad = null;
            w.grad = null;
            return y;
        });
    }

    /// <summary>
    /// CPU milliseconds the process burns in 200 ms of idling right after a parallel op: OpenMP workers spinning
    /// (about (threads − 1) × 200 with OMP_WAIT_POLICY=ACTIVE; near 0 with PASSIVE). Shows whether the start-up
    /// wait policy reached libgomp.
    /// </summary>
    public static double IdleSpinCpuMs()
    {
        using (var scope = NewDisposeScope()) matmul(randn(512, 512), randn(512, 512));
        var before = ProcessUsage.Now();
        Thread.Sleep(200);
        var used = ProcessUsage.Now().Since(before);
        return 1000 * (used.UserSeconds + used.SystemSeconds);
    }

    /// <summary>Median seconds of <paramref name="op"/> over 5 runs after 2 warm-up runs, each in a dispose scope.</summary>
    public static double Seconds(Func<Tensor> op, int reps = 5)
    {
        var times = new List<double>();
        for (int i = 0; i < reps + 2; i++)
        {
            using var scope = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            op();
            if (i >= 2) times.Add(clock.Elapsed.TotalSeconds);
        }
        times.Sort();
        return times[times.Count / 2];
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
