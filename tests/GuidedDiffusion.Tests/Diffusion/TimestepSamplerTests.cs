using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Tests.Support;

namespace GuidedDiffusion.Tests.Diffusion;

public class TimestepSamplerTests
{
    [Theory]
    [InlineData("none", 1000)]
    [InlineData("250", 250)]
    public void Uniform_WeightsAndImportanceWeights_MatchReference(string respacing, int steps)
    {
        var tensors = Reference.Tensors($"samplers/uniform_linear_1000_{respacing}.safetensors");
        var sampler = TimestepSampler.Create(TimestepSamplerKind.Uniform, steps);
        Reference.AssertClose(sampler.Weights(), tensors["weights"].Float64(), 1e-12, 0, "weights");
        var (t, w) = sampler.Sample(64, new Random(0));
        Assert.All(t, x => Assert.InRange(x, 0, steps - 1));
        var expectedImportance = tensors["importance_weights"].Float64();
        Assert.All(w, x => Assert.Equal((float)expectedImportance[0], x));
    }

    [Fact]
    public void LossSecondMoment_StateAfterEachRecordedUpdate_MatchesReference()
    {
        var json = Reference.Json("samplers/loss_second_moment_20.json");
        var tensors = Reference.Tensors("samplers/loss_second_moment_20.safetensors");
        var sampler = new LossSecondMomentResampler(json.GetProperty("num_timesteps").GetInt32());
        var calls = json.GetProperty("calls").EnumerateArray().ToArray();
        foreach (var call in calls)
        {
            int k = call.GetProperty("index").GetInt32();
            sampler.UpdateWithLosses(tensors[$"call{k}_ts"].Int64(), tensors[$"call{k}_losses"].Float64());
            Assert.Equal(call.GetProperty("warmed_up_after").GetBoolean(), sampler.WarmedUp);
            Reference.AssertClose(sampler.Weights(), tensors[$"call{k}_weights_after"].Float64(), 1e-9, 0, $"weights after call {k}");
        }
        // The recorder stored the sampler's live arrays, so every callK_*_after history/count snapshot
        // holds the final state; compare that once, exactly.
        int last = calls.Length - 1;
        Assert.Equal(tensors[$"call{last}_loss_counts_after"].Int64(), sampler.LossCounts.Select(c => (long)c));
        Reference.AssertClose(sampler.LossHistory.Cast<double>().ToArray(), tensors[$"call{last}_loss_history_after"].Float64(), 0, 0, "final history");
    }

    [Fact]
    public void LossSecondMoment_OnceWarm_SamplesHighLossStepsMoreOften()
    {
        var sampler = new LossSecondMomentResampler(4);
        for (int i = 0; i < LossSecondMomentResampler.HistoryPerTerm; i++)
            sampler.UpdateWithLosses(new long[] { 0, 1, 2, 3 }, new double[] { 0.1, 0.1, 0.1, 5.0 });
        var (t, w) = sampler.Sample(2000, new Random(3));
        Assert.True(t.Count(x => x == 3) > 1600, "step 3 carries most of the loss and should dominate");
        Assert.True(w[Array.IndexOf(t, 3L)] < 1f, "importance weight of an over-sampled step is below 1");
    }

    [Fact]
    public void Sample_IsDeterministicForASeed()
    {
        var a = TimestepSampler.Create(TimestepSamplerKind.Uniform, 1000).Sample(32, new Random(7)).Timesteps;
        var b = TimestepSampler.Create(TimestepSamplerKind.Uniform, 1000).Sample(32, new Random(7)).Timesteps;
        var c = TimestepSampler.Create(TimestepSamplerKind.Uniform, 1000).Sample(32, new Random(8)).Timesteps;
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void UnknownSampler_ListsAllowedNames()
    {
        var e = Assert.Throws<ConfigurationException>(() => TimestepSamplerKinds.Parse("importance"));
        Assert.Contains("uniform, loss-second-moment", e.Message);
    }
}
