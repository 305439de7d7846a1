using System.Text;
using System.Text.Json;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Guidance;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Diffusion;

/// <summary>
/// Reads Reference/losses (the original's <c>training_losses</c>, <c>_vb_terms_bpd</c>, <c>calc_bpd_loop</c> and
/// losses.py on seeded small UNets; see its README). Every case is found through the folder's index.json and
/// described only by its own JSON (flags, model folder), so another set with the same layout runs unchanged.
/// </summary>
internal static class LossReference
{
    public const string Folder = "losses";

    /// <summary>The training_losses cases listed in index.json.</summary>
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var entry in Reference.Json($"{Folder}/index.json").GetProperty("summary").GetProperty("cases").EnumerateArray())
            data.Add(entry.GetProperty("case").GetString()!);
        return data;
    }

    /// <summary>The JSON files of one kind (e.g. "vb_terms_per_timestep"), found by their <c>kind</c> field.</summary>
    public static TheoryData<string> FilesOfKind(string kind)
    {
        var data = new TheoryData<string>();
        foreach (var path in Directory.GetFiles(Reference.PathOf(Folder), "*.json").Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (name == "index") continue;
            if (Reference.Json($"{Folder}/{name}.json").TryGetProperty("kind", out var k) && k.GetString() == kind) data.Add(name);
        }
        return data;
    }

    public static JsonElement Json(string name) => Reference.Json($"{Folder}/{name}.json");

    public static Dictionary<string, Tensor> Tensors(string name) => Reference.Tensors($"{Folder}/{name}.safetensors");

    /// <summary>The flags of a case (the original's argparse names) as our DiffusionConfig.</summary>
    public static DiffusionConfig ConfigFrom(JsonElement flags) => new()
    {
        DiffusionSteps = flags.GetProperty("diffusion_steps").GetInt32(),
        NoiseSchedule = BetaSchedule.Parse(flags.GetProperty("noise_schedule").GetString()!),
        TimestepRespacing = flags.GetProperty("timestep_respacing").GetString()!,
        LearnSigma = flags.GetProperty("learn_sigma").GetBoolean(),
        UseKl = flags.GetProperty("use_kl").GetBoolean(),
        PredictXstart = flags.GetProperty("predict_xstart").GetBoolean(),
        RescaleTimesteps = flags.GetProperty("rescale_timesteps").GetBoolean(),
        RescaleLearnedSigmas = flags.GetProperty("rescale_learned_sigmas").GetBoolean(),
    };

    /// <summary>
    /// The loss <c>create_gaussian_diffusion(**flags)</c> builds. <c>sigma_small</c> is an argument of that function
    /// but no command-line flag (so DiffusionConfig has none): where a case sets it without learned sigmas, the variance
    /// is FIXED_SMALL, as the original chooses.
    /// </summary>
    public static DiffusionLoss LossFrom(JsonElement flags)
    {
        var config = ConfigFrom(flags);
        bool sigmaSmall = flags.TryGetProperty("sigma_small", out var s) && s.GetBoolean();
        if (!sigmaSmall || config.LearnSigma) return DiffusionLoss.For(config);
        var sampler = new ReverseProcess(config.Build(), ModelVarianceType.FixedSmall,
            config.PredictXstart ? ModelMeanType.StartX : ModelMeanType.Epsilon);
        return new DiffusionLoss(sampler, DiffusionLoss.TypeFor(config));
    }

    /// <summary>The case's UNet (its JSON's <c>model</c>, a folder under losses/), loaded like guidance/unet.</summary>
    public static UNetModel LoadUNet(JsonElement caseJson) =>
        GuidanceReference.LoadUNetFrom($"{Folder}/{caseJson.GetProperty("model").GetString()}");

    /// <summary>The original's enum spelling of ours: RescaledKl → RESCALED_KL, StartX → START_X.</summary>
    public static string OriginalName<T>(T value) where T : struct, Enum
    {
        var name = value.ToString();
        var result = new StringBuilder();
        for (int i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i])) result.Append('_');
            result.Append(char.ToUpperInvariant(name[i]));
        }
        return result.ToString();
    }

    /// <summary>
    /// Tolerance scale of a term (the README's f): the terms are bits of order 1, but the RESCALED_KL loss is T times
    /// a bound term and the RESCALED_MSE vb T/1000 times one, so their float32 rounding floor scales alike.
    /// </summary>
    public static double TermScale(DiffusionLoss loss, string term) => (loss.LossType, term) switch
    {
        (LossType.RescaledKl, "loss") => loss.Process.Diffusion.NumTimesteps,
        (LossType.RescaledMse, "vb") => loss.Process.Diffusion.NumTimesteps / 1000.0,
        _ => 1.0,
    };

    public static Tensor Term(LossTerms terms, string key) => key switch
    {
        "loss" => terms.Loss,
        "mse" => terms.Mse ?? throw new KeyNotFoundException("mse"),
        "vb" => terms.Vb ?? throw new KeyNotFoundException("vb"),
        _ => throw new ArgumentException($"unknown term '{key}'"),
    };

    /// <summary>
    /// A stub denoiser returning <paramref name="output"/> that checks it is called with exactly the timesteps the
    /// original's UNet saw (values and dtype): int64 map[t], or float32 map[t]·1000/T with rescale_timesteps.
    /// </summary>
    public static DenoiserFn Stub(Tensor output, Tensor expectedT, Tensor? expectedY, Action onCall) => (x, modelT, y) =>
    {
        AssertSameTimesteps(expectedT, modelT);
        Assert.Equal(expectedY is null, y is null);
        if (expectedY is not null) Assert.Equal(expectedY.Int64(), y!.Int64());
        onCall();
        return output;
    };

    /// <summary>The timesteps a model received equal the original's exactly, dtype included.</summary>
    public static void AssertSameTimesteps(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.dtype, actual.dtype);
        Assert.True(expected.shape.SequenceEqual(actual.shape) && expected.Float64().SequenceEqual(actual.Float64()),
            $"the model saw t = [{string.Join(", ", actual.Float64())}], the original's saw [{string.Join(", ", expected.Float64())}]");
    }

    /// <summary>
    /// The largest change of one pixel's float32 decoder log-likelihood when its tanh moves by one float32 ulp at
    /// saturation: the bin mass steps between 0 (clamped to 1e-12) and one quantum 2^-24, ln(2^-24) − ln(1e-12) nats.
    /// </summary>
    public const double TanhUlpJumpNats = -24 * 0.6931471805599453 + 27.631021115928547;

    /// <summary>
    /// Per sample, how many bits a float32 decoder NLL may legitimately differ from the original's because libm's are
    /// free to round tanh differently by one ulp: the CDF is 0.5·(1 + tanh(·)), and where tanh is within a few ulps of
    /// ±1 a one-ulp difference moves the bin mass between 0 (the 1e-12 clamp) and 2^-24. Measured: the original's torch
    /// 1.13 returns tanh(−8.947) = −1 where libtorch 2.10 returns the correctly rounded −0.99999994, which moves one of
    /// the 192 pixels of xstart_hybrid_linear's t = 0 sample by 10.3 nats (0.0775 bits per dimension). A pixel counts
    /// when the float64 gap 1 − |tanh| of either bin edge lies in [2^-26, 2^-22] (the last few float32 values below 1);
    /// each such pixel allows <see cref="TanhUlpJumpNats"/> divided by the pixel count and ln 2.
    /// </summary>
    public static double[] TanhRoundingAllowanceBits(Tensor x0, Tensor mean, Tensor logVariance)
    {
        using var scope = NewDisposeScope();
        var fragile = TanhRoundingFragile(x0, mean, logVariance);
        double pixels = x0[0].numel();
        var counts = fragile.flatten(1).to_type(ScalarType.Float64).sum(new long[] { 1 }).Float64();
        return counts.Select(c => c * TanhUlpJumpNats / (pixels * Math.Log(2))).ToArray();
    }

    /// <summary>The pixels (shaped like x0) whose decoder likelihood depends on tanh's last float32 bit near ±1.</summary>
    public static Tensor TanhRoundingFragile(Tensor x0, Tensor mean, Tensor logVariance)
    {
        using var scope = NewDisposeScope();
        var x = x0.to_type(ScalarType.Float64);
        var centered = x - mean.to_type(ScalarType.Float64);
        var invStdv = exp(-0.5 * logVariance.to_type(ScalarType.Float64)).expand_as(x);
        Tensor Fragile(Tensor z)
        {
            var a = Math.Sqrt(2 / Math.PI) * (z + 0.044715 * z.pow(3));
            var gap = 1 - tanh(a).abs();
            return gap.ge(Math.Pow(2, -26)) & gap.le(Math.Pow(2, -22));
        }
        var fragile = Fragile(invStdv * (centered + 1 / 255.0)) | Fragile(invStdv * (centered - 1 / 255.0));
        return fragile.MoveToOuterDisposeScope();
    }

    /// <summary>|a − e| ≤ rtol·|e| + atol[i] element by element, reporting the worst element.</summary>
    public static void AssertClose(Tensor actual, Tensor expected, double rtol, double[] atol, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var a = actual.Float64();
        var e = expected.Float64();
        for (int i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(a[i] - e[i]) <= rtol * Math.Abs(e[i]) + atol[i],
                $"{what}: element {i} is {a[i]:R}, expected {e[i]:R} (rtol {rtol}, atol {atol[i]})");
    }
}
