using System.Text.Json;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Diffusion.Solvers;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Guidance;

/// <summary>
/// The small deterministic model of Reference/solvers (see its README): a learned-sigma "UNet" whose ε channels are
/// the exact noise prediction of Gaussian data N(0, 0.5²) under an approximation of the linear schedule plus a
/// seeded tanh layer, and a 5-class classifier, both continuous in the model time. Everything in float32, as the
/// reference's float32 run; the model times each call received are recorded.
/// </summary>
internal sealed class TinySolverModels
{
    public const int Channels = 3;

    private readonly Tensor w, u, v;

    public TinySolverModels(IReadOnlyDictionary<string, Tensor> file)
    {
        w = file["eps/W"].to_type(ScalarType.Float32);
        u = file["eps/u"].to_type(ScalarType.Float32);
        v = file["eps/v"].to_type(ScalarType.Float32);
        Classifier = new TinyClassifier(file["cls/A"].to_type(ScalarType.Float32), file["cls/c"].to_type(ScalarType.Float32));
    }

    /// <summary>Model times (first batch entry) of every denoiser call, in order.</summary>
    public List<double> ModelTimes { get; } = [];

    public TinyClassifier Classifier { get; }

    public Tensor Denoise(Tensor x, Tensor modelTimesteps, Tensor? y)
    {
        using var scope = NewDisposeScope();
        ModelTimes.Add(modelTimesteps[0].to_type(ScalarType.Float64).item<double>());
        long batch = x.shape[0];
        var tau = (modelTimesteps.to_type(ScalarType.Float32) + 1.0) / 1000.0;
        var a2 = exp(-(0.1 * tau + 9.95 * tau.pow(2))).view(-1, 1, 1, 1);
        var gaussian = sqrt(1 - a2) * x / (a2 * 0.25 + (1 - a2));
        var flat = x.reshape(batch, -1);
        var h = tanh(flat.mm(w.t()) + cos(3 * tau).unsqueeze(1) * u + sin(7 * tau).unsqueeze(1) * v);
        var output = cat([gaussian, zeros_like(gaussian)], 1) + 0.1 * h.reshape(batch, 2 * Channels, x.shape[2], x.shape[3]);
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>logits = tanh(x·Aᵀ + τ·c)·1.5/(0.5 + τ), τ = (model time + 1)/1000.</summary>
    internal sealed class TinyClassifier : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly Tensor a, c;

        public TinyClassifier(Tensor a, Tensor c) : base("tiny_classifier") => (this.a, this.c) = (a, c);

        public override Tensor forward(Tensor x, Tensor modelTimesteps)
        {
            using var scope = NewDisposeScope();
            var tau = ((modelTimesteps.to_type(ScalarType.Float32) + 1.0) / 1000.0).unsqueeze(1);
            var logits = tanh(x.reshape(x.shape[0], -1).mm(a.t()) + tau * c) * 1.5 / (0.5 + tau);
            return logits.MoveToOuterDisposeScope();
        }
    }
}

/// <summary>One case of Reference/solvers/solvers.json.</summary>
internal sealed record SolverCase(string Name, SolverOptions Options, double Scale, int Nfe, double[] Float32Error, double ModelTimeError, JsonElement Json)
{
    public static IReadOnlyList<SolverCase> All { get; } = Load();

    private static List<SolverCase> Load()
    {
        var cases = new List<SolverCase>();
        foreach (var c in Reference.Json("solvers/solvers.json").GetProperty("cases").EnumerateArray())
        {
            var options = new SolverOptions
            {
                Kind = Spellings.Parse<SolverKind>(c.GetProperty("solver").GetString(), "sampler", "solver"),
                Method = Spellings.Parse<SolverMethod>(c.GetProperty("method").GetString(), "solver_method", "method"),
                Order = c.GetProperty("order").GetInt32(),
                Steps = c.GetProperty("steps").GetInt32(),
                SkipType = Spellings.Parse<SkipType>(c.GetProperty("skip_type").GetString(), "skip_type", "spacing"),
                LowerOrderFinal = c.GetProperty("lower_order_final").GetBoolean(),
                Thresholding = c.GetProperty("thresholding").GetBoolean(),
                Variant = Spellings.Parse<UniPCVariant>(c.GetProperty("variant").GetString(), "unipc_variant", "variant"),
                UniPCPredictX0 = c.GetProperty("predict_x0").GetBoolean(),
            };
            cases.Add(new SolverCase(c.GetProperty("name").GetString()!, options, c.GetProperty("scale").GetDouble(), c.GetProperty("nfe").GetInt32(),
                c.GetProperty("f32_vs_f64_max_abs_per_state").EnumerateArray().Select(e => e.GetDouble()).ToArray(),
                c.GetProperty("f32_vs_f64_max_abs_model_time").GetDouble(), c));
        }
        return cases;
    }

    public override string ToString() => Name;
}
