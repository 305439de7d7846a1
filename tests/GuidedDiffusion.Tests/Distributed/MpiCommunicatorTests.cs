using Xunit.Abstractions;

namespace GuidedDiffusion.Tests.Distributed;

/// <summary>
/// Two real MPI ranks (mpiexec -n 2) running the checks in tests/GuidedDiffusion.MpiHost/Scenarios.cs.
/// One class, so xunit runs them one after another rather than four jobs at once.
/// </summary>
[Collection("mpi")]
public class MpiCommunicatorTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [MpiFact]
    public void Collectives_AllReduceAllGatherBroadcastBarrier_AgreeOnTwoRanks() => AssertBothRanksPass("collectives");

    [MpiFact]
    public void BroadcastParameters_MakesDifferentlySeededModulesEqualToRank0() => AssertBothRanksPass("broadcast-module");

    [MpiFact]
    public void GradientAllReducer_BucketedAndInPlace_GiveTheMeanGradient() => AssertBothRanksPass("gradients");

    [MpiFact]
    public void RunGuarded_ARankThatThrows_AbortsTheWholeJobInsteadOfHanging()
    {
        var result = Run("throw");
        Assert.False(result.TimedOut, "mpiexec hung after one rank threw");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("rank 1: deliberate failure on one rank", result.StandardError);
        // Rank 0 sleeps for minutes after its barrier: only MPI_Abort ends it this fast.
        Assert.True(result.Elapsed < TimeSpan.FromSeconds(30), $"took {result.Elapsed.TotalSeconds:F1} s");
    }

    private void AssertBothRanksPass(string scenario)
    {
        var result = Run(scenario);
        Assert.False(result.TimedOut, $"mpiexec did not finish '{scenario}' within {Timeout.TotalSeconds} s");
        Assert.True(result.ExitCode == 0, $"exit code {result.ExitCode}; stderr:\n{result.StandardError}");
        Assert.Contains($"OK {scenario} rank 0/2", result.StandardOutput);
        Assert.Contains($"OK {scenario} rank 1/2", result.StandardOutput);
    }

    private MpiLauncher.Result Run(string scenario)
    {
        var result = MpiLauncher.Run(scenario, ranks: 2, Timeout);
        output.WriteLine($"mpiexec -n 2 ... {scenario}: exit {result.ExitCode} after {result.Elapsed.TotalSeconds:F1} s");
        output.WriteLine(result.StandardOutput);
        output.WriteLine(result.StandardError);
        return result;
    }
}
