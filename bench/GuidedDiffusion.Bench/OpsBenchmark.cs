using System.Text.Json;
using GuidedDiffusion.Diagnostics;
using GuidedDiffusion.Models;
using GuidedDiffusion.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Bench;

/// <summary>
/// Per-op rates on this CPU, fp32 against bf16, at the classifier's shapes: 3×3 convolution forward+backward in
/// NCHW and channels-last, a 2048² matmul, attention at 32×32 (T = 1024) through the original's einsum formula
/// and through <c>scaled_dot_product_attention</c>, and GroupNorm32 (float32 statistics). Each variant is timed
/// in the same process, alternating, so ratios hold under load. Run with ONEDNN_VERBOSE=1 to see the kernel
/// (ISA) oneDNN picks for each primitive. Last line: one JSON object.
/// </summary>
internal static class OpsBenchmark
{
    public static int Run(string[] args)
    {
        var a = Args.Parse(args);
        int threads = a.Int("threads", 2), rounds = a.Int("rounds", 2);
        long batch = a.Int("batch_size", 16), channels = a.Int("channels", 128), tokens = a.Int("tokens", 1024), headChannels = a.Int("head_channels", 64);
        torch.set_num_threads(threads);
        var cpu = CpuFeatures.Current;
        var ops = new (string Name, Func<double> Gflops)[]
        {
            ("conv3x3_fwd_bwd_fp32_nchw", () => Ceiling.ConvFwdBwdGflops(ScalarType.Float32, channelsLast: false, batch, channels)),
            ("conv3x3_fwd_bwd_fp32_nhwc", () => Ceiling.ConvFwdBwdGflops(ScalarType.Float32, channelsLast: true, batch, channels)),
            ("conv3x3_fwd_bwd_bf16_nchw", () => Ceiling.ConvFwdBwdGflops(ScalarType.BFloat16, channelsLast: false, batch, channels)),
            ("conv3x3_fwd_bwd_bf16_nhwc", () => Ceiling.ConvFwdBwdGflops(ScalarType.BFloat16, channelsLast: true, batch, channels)),
            ("matmul_2048_fp32", () => Ceiling.MatmulGflops(ScalarType.Float32)),
            ("matmul_2048_bf16", () => Ceiling.MatmulGflops(ScalarType.BFloat16)),
            ("attention_fwd_bwd_einsum_fp32", () => AttentionGflops(ScalarType.Float32, EinsumAttention, batch, tokens, headChannels)),
            ("attention_fwd_bwd_sdpa_fp32", () => AttentionGflops(ScalarType.Float32, SdpaAttention, batch, tokens, headChannels)),
            ("attention_fwd_bwd_bmm_fp32", () => AttentionGflops(ScalarType.Float32, BmmAttention, batch, tokens, headChannels)),
            ("attention_fwd_bwd_conv_fp32", () => AttentionGflops(ScalarType.Float32, ConvAttention, batch, tokens, headChannels)),
            ("attention_fwd_bwd_einsum_bf16", () => AttentionGflops(ScalarType.BFloat16, EinsumAttention, batch, tokens, headChannels)),
            ("attention_fwd_bwd_sdpa_bf16", () => AttentionGflops(ScalarType.BFloat16, SdpaAttention, batch, tokens, headChannels)),
            ("groupnorm32_fwd_bwd_fp32_ms", () => GroupNormMs(ScalarType.Float32, batch, channels)),
            ("groupnorm32_fwd_bwd_bf16_ms", () => GroupNormMs(ScalarType.BFloat16, batch, channels)),
            // The original's formula on a bf16 input (float32 copy, normalise, cast back): what GroupNorm32 did
            // before it used libtorch's mixed-type kernel.
            ("groupnorm32_fwd_bwd_bf16_upcast_ms", () => GroupNormMs(ScalarType.BFloat16, batch, channels, upcast: true)),
        };
        string only = a.Str("only", "");
        ops = ops.Where(o => o.Name.Contains(only, StringComparison.Ordinal)).ToArray();
        var results = ops.ToDictionary(o => o.Name, _ => new List<double>());
        for (int r = 0; r < rounds; r++)
            foreach (var (name, gflops) in ops)
            {
                results[name].Add(gflops());
                Console.Error.WriteLine($"round {r + 1}: {name} {results[name][^1]:0.0}");
            }
        var peak = FmaPeak.Of(cpu, threads);
        var json = new Dictionary<string, object>
        {
            ["benchmark"] = "ops",
            ["cpu"] = cpu.Model,
            ["cpu_features"] = cpu.Summary,
            ["cpu_identity"] = cpu.Identity,
            ["threads"] = threads,
            ["load_average_1min"] = TrainStepBenchmark.LoadAverage(),
            ["fma_peak_fp32_gflops"] = Math.Round(peak.Fp32Gflops, 1),
            ["fma_peak_bf16_gflops"] = Math.Round(peak.Bf16Gflops, 1),
            ["fma_peak_basis"] = peak.Basis,
        };
        // GFLOP/s: best of the rounds (least disturbed by other processes); GroupNorm in ms: also the best.
        foreach (var (name, values) in results)
            json[name] = Math.Round(name.EndsWith("_ms", StringComparison.Ordinal) ? values.Min() : values.Max(), 1);
        Console.WriteLine(JsonSerializer.Serialize(json));
        return 0;
    }

    /// <summary>
    /// GFLOP/s of one attention block's products, forward + backward (QKᵀ and A·V forward, four products backward:
    /// 3 × the forward's 4·B·T²·C), one head of <paramref name="headChannels"/>.
    /// </summary>
    private static double AttentionGflops(ScalarType dtype, Func<Tensor, long, Tensor> formula, long batch, long tokens, long headChannels)
    {
        using var scope = NewDisposeScope();
        var qkv = randn(batch, 3 * headChannels, tokens).to_type(dtype).requires_grad_(true);
        double flops = 3 * 4.0 * batch * tokens * tokens * headChannels;
        return flops / 1e9 / Ceiling.Seconds(() =>
        {
            var y = formula(qkv, headChannels);
            y.sum().backward();
            qkv.grad!.Dispose();
            qkv.grad = null;
            return y;
        }, reps: 3);
    }

    /// <summary>Our kernel: the model's <see cref="QKVAttention"/> (one head), on scaled_dot_product_attention.</summary>
    private static Tensor SdpaAttention(Tensor qkv, long ch)
    {
        using var attention = new QKVAttention(1, legacyOrder: true);
        return attention.call(qkv);
    }

    /// <summary>The original's QKVAttentionLegacy formula (one head): two einsums and a float32 softmax.</summary>
    private static Tensor EinsumAttention(Tensor qkv, long ch)
    {
        double scale = 1 / Math.Sqrt(Math.Sqrt(ch));
        var parts = qkv.split(ch, dim: 1);
        var weight = einsum("bct,bcs->bts", parts[0] * scale, parts[1] * scale);
        weight = softmax(weight.to_type(ScalarType.Float32), dim: -1).to_type(weight.dtype);
        return einsum("bts,bcs->bct", weight, parts[2]);
    }

    /// <summary>The same product as three batched matmuls on [B, T, C] operands with C contiguous.</summary>
    private static Tensor BmmAttention(Tensor qkv, long ch)
    {
        var parts = qkv.split(ch, dim: 1);
        var q = parts[0].transpose(1, 2).contiguous();
        var k = parts[1];
        var v = parts[2].transpose(1, 2).contiguous();
        var weight = softmax(bmm(q, k) * (1 / Math.Sqrt(ch)), dim: -1);
        return bmm(weight, v).transpose(1, 2);
    }

    /// <summary>
    /// The same product as two grouped 1×1 convolutions (one group per batch item), which oneDNN runs with its
    /// AVX-512 kernels where MKL's matmul takes an AVX2 path (AMD): S = QᵀK with K as the weight, softmax over
    /// the key axis (the channel axis there), then A·V with V as the weight.
    /// </summary>
    private static Tensor ConvAttention(Tensor qkv, long ch)
    {
        long b = qkv.shape[0], t = qkv.shape[2];
        var parts = qkv.split(ch, dim: 1);
        var q = parts[0].reshape(1, b * ch, t, 1);
        var k = parts[1].transpose(1, 2).reshape(b * t, ch, 1, 1);
        var v = parts[2].reshape(b * ch, t, 1, 1);
        var weight = nn.functional.conv2d(q, k, groups: b) * (1 / Math.Sqrt(ch));   // [1, B·S, T, 1]
        weight = softmax(weight.reshape(b, t, t), dim: 1).reshape(1, b * t, t, 1);
        return nn.functional.conv2d(weight, v, groups: b).reshape(b, ch, t);
    }

    private static double GroupNormMs(ScalarType dtype, long batch, long channels, bool upcast = false)
    {
        using var scope = NewDisposeScope();
        using var norm = new GroupNorm32(channels);
        var x = randn(batch, channels, 32, 32).to_type(dtype).requires_grad_(true);
        return 1000 * Ceiling.Seconds(() =>
        {
            var y = upcast
                ? nn.functional.group_norm(x.to_type(ScalarType.Float32), GroupNorm32.Groups, norm.Weight, norm.Bias, 1e-5).to_type(dtype)
                : norm.call(x);
            y.sum().backward();
            x.grad!.Dispose();
            x.grad = null;
            return y;
        });
    }
}
