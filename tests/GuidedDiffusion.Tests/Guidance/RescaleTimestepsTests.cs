using System.Text.Json;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Guidance;

/// <summary>
/// rescale_timesteps_probe.json: what the model and cond_fn receive for spaced t, with and without respacing and
/// rescale_timesteps (mapped through the timestep map; ×1000/T as float32 only when rescaling).
/// </summary>
public class RescaleTimestepsTests
{
    [Fact]
    public void ModelAndCondFn_ReceiveWhatTheOriginalWrapperSends()
    {
        using var scope = NewDisposeScope();
        var rows = Reference.Json("guidance/guide/rescale_timesteps_probe.json").GetProperty("rows").EnumerateArray().ToList();
        Assert.NotEmpty(rows);
        foreach (var row in rows)
        {
            var config = new DiffusionConfig
            {
                TimestepRespacing = row.GetProperty("timestep_respacing").GetString()!,
                RescaleTimesteps = row.GetProperty("rescale_timesteps").GetBoolean(),
                LearnSigma = true,
            };
            var sampler = ReverseProcess.For(config);
            string what = $"respacing '{config.TimestepRespacing}', rescale {config.RescaleTimesteps}";
            Assert.Equal(row.GetProperty("num_timesteps").GetInt32(), sampler.Diffusion.NumTimesteps);
            var t = tensor(row.GetProperty("t").EnumerateArray().Select(e => e.GetInt64()).ToArray());
            var x = zeros(t.shape[0], 3, 4, 4);
            Tensor? modelSaw = null, condSaw = null;
            DenoiserFn model = (xs, ts, _) => { modelSaw = ts.clone().DetachFromDisposeScope(); return zeros(xs.shape[0], 6, 4, 4); };
            ConditionFn condFn = (xs, ts, _) => { condSaw = ts.clone().DetachFromDisposeScope(); return zeros_like(xs); };
            var pmv = sampler.PMeanVariance(model, x, t, null);
            sampler.ConditionMean(condFn, pmv, x, t, null);
            Check(row.GetProperty("model_sees"), row.GetProperty("model_t_dtype").GetString()!, modelSaw!, $"model, {what}");
            Check(row.GetProperty("cond_fn_sees"), row.GetProperty("cond_fn_t_dtype").GetString()!, condSaw!, $"cond_fn, {what}");
            condSaw = null;
            sampler.ConditionScore(condFn, pmv, x, t, null);
            Check(row.GetProperty("cond_fn_sees"), row.GetProperty("cond_fn_t_dtype").GetString()!, condSaw!, $"cond_fn (score), {what}");
            modelSaw!.Dispose();
            condSaw!.Dispose();
        }
    }

    private static void Check(JsonElement expected, string dtype, Tensor seen, string what)
    {
        Assert.Equal(dtype == "torch.int64" ? ScalarType.Int64 : ScalarType.Float32, seen.dtype);
        Assert.True(expected.EnumerateArray().Select(e => e.GetDouble()).SequenceEqual(seen.Float64()), what);
    }
}
