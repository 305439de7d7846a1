using System.Collections.Concurrent;
using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Models;

/// <summary>Builds models from the reference cases and the formula weights of the full-size manifests.</summary>
internal static class ReferenceModels
{
    public static readonly string[] SmallCases =
    {
        "enc32_spatial", "enc32_spatial_v2", "enc64_adaptive_depth2", "enc64_attention_ss_updown", "enc64_plain_noss_noupdown",
    };

    public static JsonElement CaseJson(string name) => Reference.Json($"models/{name}/case.json");

    /// <summary>EncoderUNetOptions from a case's constructor_args (the original's EncoderUNetModel arguments).</summary>
    public static EncoderUNetOptions OptionsFrom(JsonElement args) => new()
    {
        ImageSize = args.GetProperty("image_size").GetInt32(),
        InChannels = args.GetProperty("in_channels").GetInt32(),
        ModelChannels = args.GetProperty("model_channels").GetInt32(),
        OutChannels = args.GetProperty("out_channels").GetInt32(),
        NumResBlocks = args.GetProperty("num_res_blocks").GetInt32(),
        AttentionResolutions = args.GetProperty("attention_resolutions").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
        Dropout = args.GetProperty("dropout").GetDouble(),
        ChannelMult = args.GetProperty("channel_mult").EnumerateArray().Select(e => e.GetDouble()).ToArray(),
        ConvResample = args.GetProperty("conv_resample").GetBoolean(),
        NumHeads = args.GetProperty("num_heads").GetInt32(),
        NumHeadChannels = args.GetProperty("num_head_channels").GetInt32(),
        UseScaleShiftNorm = args.GetProperty("use_scale_shift_norm").GetBoolean(),
        ResblockUpdown = args.GetProperty("resblock_updown").GetBoolean(),
        UseNewAttentionOrder = args.GetProperty("use_new_attention_order").GetBoolean(),
        Pool = ClassifierPools.Parse(args.GetProperty("pool").GetString()),
    };

    /// <summary>The small case's model with its reference weights loaded from state_dict.pt.</summary>
    public static EncoderUNet LoadSmallCase(string name)
    {
        var model = new EncoderUNet(OptionsFrom(CaseJson(name).GetProperty("constructor_args")));
        StateDictIO.Load(model, Reference.PathOf($"models/{name}/state_dict.pt"));
        model.train();
        return model;
    }

    /// <summary>ClassifierConfig from a full-size manifest's flags.</summary>
    public static ClassifierConfig ConfigFromFlags(JsonElement flags) => new()
    {
        ImageSize = flags.GetProperty("image_size").GetInt32(),
        UseFp16 = flags.GetProperty("classifier_use_fp16").GetBoolean(),
        Width = flags.GetProperty("classifier_width").GetInt32(),
        Depth = flags.GetProperty("classifier_depth").GetInt32(),
        AttentionResolutions = SettingList<int>.Parse(flags.GetProperty("classifier_attention_resolutions").GetString(), "classifier_attention_resolutions"),
        UseScaleShiftNorm = flags.GetProperty("classifier_use_scale_shift_norm").GetBoolean(),
        ResblockUpdown = flags.GetProperty("classifier_resblock_updown").GetBoolean(),
        Pool = ClassifierPools.Parse(flags.GetProperty("classifier_pool").GetString()),
    };

    /// <summary>The model's state dict has the manifest's keys in order, its shapes, float32 everywhere, and its
    /// entry and parameter counts.</summary>
    public static void AssertMatchesManifest(JsonElement json, nn.Module model)
    {
        var expected = Manifest(json);
        var actual = model.state_dict().ToList();
        Assert.Equal(json.GetProperty("num_state_dict_entries").GetInt32(), actual.Count);
        Assert.Equal(expected.Select(e => e.Key), actual.Select(a => a.Key));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.True(expected[i].Shape.SequenceEqual(actual[i].Value.shape), $"{expected[i].Key} shape");
            Assert.Equal("float32", expected[i].Dtype);
            Assert.Equal(ScalarType.Float32, actual[i].Value.dtype);
        }
        Assert.Equal(json.GetProperty("num_parameters").GetInt64(), model.parameters().Sum(p => p.numel()));
    }

    /// <summary>(key, shape, dtype) rows of a manifest's state_dict_keys.</summary>
    public static List<(string Key, long[] Shape, string Dtype)> Manifest(JsonElement json) =>
        json.GetProperty("state_dict_keys").EnumerateArray()
            .Select(e => (e[0].GetString()!, e[1].EnumerateArray().Select(d => d.GetInt64()).ToArray(), e[2].GetString()!))
            .ToList();

    /// <summary>
    /// Fills the model with the README's formula weights: entry k, flat index i: u = sin(1.7i + 0.3k + 0.1 + salt)
    /// in float64; u·sqrt(1/fan_in) for ≥2-D, 0.05u for biases, 1 + 0.1u for 1-D weights; cast to float32.
    /// </summary>
    public static void FillFormulaWeights(nn.Module model, double salt = 0)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int k = 0;
        foreach (var (key, tensor) in model.state_dict())
        {
            var shape = tensor.shape;
            long n = tensor.numel();
            var u = sin(arange(n, dtype: ScalarType.Float64) * 1.7 + 0.3 * k + 0.1 + salt);
            Tensor value = shape.Length >= 2
                ? u * Math.Sqrt(1.0 / ((double)n / shape[0]))
                : key.EndsWith("bias", StringComparison.Ordinal) ? u * 0.05 : u * 0.1 + 1.0;
            tensor.copy_(value.to_type(ScalarType.Float32).reshape(shape));
            k++;
        }
    }

    /// <summary>The README's formula input x[b,c,h,w] = f32(0.8·sin(0.05h + 0.07w + 1.1c + 0.5b + salt)).</summary>
    public static Tensor FormulaInput(long[] shape, double salt = 0)
    {
        long bs = shape[0], cs = shape[1], hs = shape[2], ws = shape[3];
        var data = new float[bs * cs * hs * ws];
        int idx = 0;
        for (long b = 0; b < bs; b++)
            for (long c = 0; c < cs; c++)
                for (long h = 0; h < hs; h++)
                    for (long w = 0; w < ws; w++)
                        data[idx++] = (float)(0.8 * Math.Sin(0.05 * h + 0.07 * w + 1.1 * c + 0.5 * b + salt));
        return tensor(data, shape);
    }
}

/// <summary>One forward/backward pass of a small reference case with the reference inputs, computed once per case.</summary>
internal sealed class SmallCaseRun
{
    private static readonly ConcurrentDictionary<string, Lazy<SmallCaseRun>> Cache = new();

    private SmallCaseRun(string name)
    {
        // Cached across tests: own scope, and every kept tensor detached from it (and from any caller's scope).
        using var scope = NewDisposeScope();
        Name = name;
        Json = ReferenceModels.CaseJson(name);
        Expected = Reference.Tensors($"models/{name}/case.safetensors");
        var model = ReferenceModels.LoadSmallCase(name);
        var x = Expected["x"].clone().requires_grad_(true);
        var activations = new Dictionary<string, Tensor>();
        Logits = model.ForwardWithActivations(x, Expected["timesteps"], (key, value) => activations[key] = value.detach().clone());
        PerSampleLoss = nn.functional.cross_entropy(Logits, Expected["labels"], reduction: nn.Reduction.None);
        Loss = PerSampleLoss.mean();
        Loss.backward();
        XGrad = x.grad!.clone();
        Grads = model.named_parameters().Where(p => p.parameter.grad is not null)
            .ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        Activations = activations;
        Logits = Logits.detach();
        var kept = new[] { Logits, PerSampleLoss, Loss, XGrad }
            .Concat(Expected.Values).Concat(Grads.Values).Concat(Activations.Values);
        foreach (var tensor in kept) tensor.DetachFromDisposeScope();
    }

    public string Name { get; }
    public JsonElement Json { get; }
    public Dictionary<string, Tensor> Expected { get; }
    public Tensor Logits { get; }
    public Tensor PerSampleLoss { get; }
    public Tensor Loss { get; }
    public Tensor XGrad { get; }
    public Dictionary<string, Tensor> Grads { get; }
    public Dictionary<string, Tensor> Activations { get; }

    /// <summary>True where the logits do not depend on t (see the README): time gradients are rounding noise.</summary>
    public bool IgnoresTimestep =>
        Json.GetProperty("timestep_sensitivity").GetProperty("max_abs_logit_change_when_t_shifted_by_500").GetDouble() < 1e-5;

    public static SmallCaseRun Of(string name) =>
        Cache.GetOrAdd(name, n => new Lazy<SmallCaseRun>(() => new SmallCaseRun(n))).Value;
}
