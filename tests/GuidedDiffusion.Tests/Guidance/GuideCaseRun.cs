using System.Collections.Concurrent;
using System.Text.Json;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Guidance;

/// <summary>
/// Everything a guide/&lt;diffusion&gt; case checks, computed once per case with the reference inputs: the fixed
/// noise stands in for the sampler's noise (each step must draw exactly once), and every t handed to the model and
/// to cond_fn is recorded.
/// </summary>
internal sealed class GuideCaseRun
{
    public static readonly double[] Scales = { 1, 3, 300 };
    private static readonly ConcurrentDictionary<string, Lazy<GuideCaseRun>> Cache = new();

    private GuideCaseRun(string name)
    {
        // The shared models must be built outside this scope, or their parameters die with it.
        _ = GuidanceModels.CondUNet;
        _ = GuidanceModels.Classifier;
        using var scope = NewDisposeScope();
        Name = name;
        Json = Reference.Json($"guidance/guide/{name}.json");
        Expected = Reference.Tensors($"guidance/guide/{name}.safetensors");
        Diffusion = GuidanceReference.DiffusionFrom(Json.GetProperty("diffusion_flags"));
        Process = ReverseProcess.For(Diffusion);
        var x = Expected["x"];
        var t = Expected["t"];
        var y = Expected["y"];

        GuidanceModels.Run(() =>
        {
            var unet = GuidanceModels.CondUNet;
            DenoiserFn model = (xs, ts, ys) =>
            {
                ModelTimestepsSeen.Add(ts.clone().DetachFromDisposeScope());
                return unet.forward(xs, ts, unet.IsClassConditional ? ys : null);
            };
            using (no_grad())
            {
                ModelOutput = unet.forward(x, Process.Diffusion.ModelTimesteps(t), y);
                Pmv = Process.PMeanVariance(model, x, t, y, clipDenoised: true);
                PmvNoClip = Process.PMeanVariance(model, x, t, y, clipDenoised: false);
                ClassifierLogits = GuidanceModels.Classifier.forward(x, Process.Diffusion.ModelTimesteps(t));
                Unguided["p_sample"] = Process.PSample(model, x, t, y, FixedNoise()).Sample;
                Unguided["ddim_eta0.0"] = Process.DdimSample(model, x, t, y, FixedNoise(), eta: 0.0).Sample;
                Unguided["ddim_eta0.5"] = Process.DdimSample(model, x, t, y, FixedNoise(), eta: 0.5).Sample;

                foreach (double scale in Scales)
                {
                    var guidance = new ClassifierGuidance(GuidanceModels.Classifier, scale);
                    var seen = new List<Tensor>();
                    ConditionFn condFn = (xs, ts, ys) =>
                    {
                        seen.Add(ts.clone().DetachFromDisposeScope());
                        return guidance.Gradient(xs, ts, ys);
                    };
                    var s = new Dictionary<string, Tensor>();
                    s["cond_fn/grad"] = guidance.Gradient(x, Process.Diffusion.ModelTimesteps(t), y);
                    s["condition_mean"] = Process.ConditionMean(condFn, Pmv, x, t, y);
                    var score = Process.ConditionScore(condFn, Pmv, x, t, y);
                    s["condition_score/mean"] = score.Mean;
                    s["condition_score/pred_xstart"] = score.PredXstart;
                    var step = Process.PSample(model, x, t, y, FixedNoise(), condFn);
                    s["p_sample/sample"] = step.Sample;
                    s["p_sample/pred_xstart"] = step.PredXstart;
                    var ddim0 = Process.DdimSample(model, x, t, y, FixedNoise(), condFn, eta: 0.0);
                    var ddim5 = Process.DdimSample(model, x, t, y, FixedNoise(), condFn, eta: 0.5);
                    s["ddim_eta0.0/sample"] = ddim0.Sample;
                    s["ddim_eta0.5/sample"] = ddim5.Sample;
                    s["ddim/pred_xstart"] = ddim0.PredXstart;
                    s["ddim_eta0.5/pred_xstart"] = ddim5.PredXstart;
                    Guided[scale] = s;
                    CondFnTimestepsSeen[scale] = seen;
                }
            }
            return 0;
        });

        var kept = new[] { ModelOutput, ClassifierLogits, Pmv.Mean, Pmv.Variance, Pmv.LogVariance, Pmv.PredXstart, PmvNoClip.Mean, PmvNoClip.PredXstart }
            .Concat(Expected.Values).Concat(Unguided.Values).Concat(Guided.Values.SelectMany(d => d.Values));
        foreach (var tensor in kept) tensor.DetachFromDisposeScope();
    }

    public string Name { get; }
    public JsonElement Json { get; }
    public Dictionary<string, Tensor> Expected { get; }
    public DiffusionConfig Diffusion { get; }
    public ReverseProcess Process { get; }
    public Tensor ModelOutput { get; private set; } = null!;
    public Tensor ClassifierLogits { get; private set; } = null!;
    public PMeanVarianceResult Pmv { get; private set; } = null!;
    public PMeanVarianceResult PmvNoClip { get; private set; } = null!;
    public Dictionary<string, Tensor> Unguided { get; } = new();
    public Dictionary<double, Dictionary<string, Tensor>> Guided { get; } = new();
    public List<Tensor> ModelTimestepsSeen { get; } = new();
    public Dictionary<double, List<Tensor>> CondFnTimestepsSeen { get; } = new();
    public int NoiseCallsPerStep { get; private set; } = -1;

    public static string Prefix(double scale) => $"s{scale:0}";

    public static GuideCaseRun Of(string name) => Cache.GetOrAdd(name, n => new Lazy<GuideCaseRun>(() => new GuideCaseRun(n))).Value;

    /// <summary>The recorded noise; fails the run if a step asks for it more than once.</summary>
    private NoiseFn FixedNoise()
    {
        int calls = 0;
        return like =>
        {
            calls++;
            Assert.True(calls == 1, "a sampling step must draw its noise exactly once");
            Assert.Equal(Expected["noise"].shape, like.shape);
            NoiseCallsPerStep = calls;
            return Expected["noise"].clone();
        };
    }
}
