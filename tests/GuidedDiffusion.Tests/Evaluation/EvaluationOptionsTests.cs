using GuidedDiffusion.Cli;
using GuidedDiffusion.Evaluation;

namespace GuidedDiffusion.Tests.Evaluation;

public sealed class EvaluationOptionsTests
{
    [Fact]
    public void ResolveTimesteps_DefaultsToTenBinCentres()
    {
        Assert.Equal(new[] { 50, 150, 250, 350, 450, 550, 650, 750, 850, 950 }, new EvaluationOptions().ResolveTimesteps(1000));
        Assert.Equal(new[] { 12, 37, 62, 87 }, new EvaluationOptions { NumTBins = 4 }.ResolveTimesteps(100));
        Assert.Equal(new[] { 0, 1, 2 }, new EvaluationOptions { NumTBins = 3 }.ResolveTimesteps(3));
        Assert.Equal(new[] { 100, 300, 500, 700, 900 }, EvaluationOptions.QuickTable.ResolveTimesteps(1000));
        Assert.False(EvaluationOptions.QuickTable.ComputeGradNorm);
    }

    [Fact]
    public void ResolveTimesteps_ExplicitListIsSortedAndOverridesBins()
    {
        var options = new EvaluationOptions { NumTBins = 3, Timesteps = EvaluationOptions.ParseTimesteps("500, 0,100") };
        Assert.Equal(new[] { 0, 100, 500 }, options.ResolveTimesteps(1000));
    }

    [Theory]
    [InlineData("0,1000", "--timesteps: 1000 is outside [0, 1000)")]
    [InlineData("-1", "--timesteps: -1 is outside")]
    [InlineData("5,5", "--timesteps: 5 is listed twice")]
    public void ResolveTimesteps_RejectsBadLists(string list, string message)
    {
        var options = new EvaluationOptions { Timesteps = EvaluationOptions.ParseTimesteps(list) };
        var e = Assert.Throws<ConfigurationException>(() => options.ResolveTimesteps(1000));
        Assert.Contains(message, CliErrors.Describe(e));
    }

    [Fact]
    public void Options_RejectNonsenseWithTheFlagName()
    {
        Assert.Contains("--timesteps: 'ten'", CliErrors.Describe(Assert.Throws<ConfigurationException>(() => EvaluationOptions.ParseTimesteps("0,ten"))));
        Assert.Contains("--num_t_bins", CliErrors.Describe(Assert.Throws<ConfigurationException>(() => new EvaluationOptions { NumTBins = 0 }.ResolveTimesteps(1000))));
        Assert.Contains("--num_t_bins", CliErrors.Describe(Assert.Throws<ConfigurationException>(() => new EvaluationOptions { NumTBins = 11 }.ResolveTimesteps(10))));
        Assert.Contains("--noise_repeats", CliErrors.Describe(Assert.Throws<ConfigurationException>(() => new EvaluationOptions { NoiseRepeats = 0 }.Validate())));
        Assert.Contains("--batch_size", CliErrors.Describe(Assert.Throws<ConfigurationException>(() => new EvaluationOptions { BatchSize = 0 }.Validate())));
    }

    [Fact]
    public void NoiseSeed_DependsOnEveryCoordinate()
    {
        var seeds = new HashSet<long>();
        for (int t = 0; t < 3; t++)
            for (int r = 0; r < 3; r++)
                for (int b = 0; b < 3; b++)
                    seeds.Add(NoiseLevelEvaluator.NoiseSeed(0, t, r, b));
        Assert.Equal(27, seeds.Count);
        Assert.NotEqual(NoiseLevelEvaluator.NoiseSeed(0, 1, 0, 0), NoiseLevelEvaluator.NoiseSeed(1, 1, 0, 0));
    }
}
