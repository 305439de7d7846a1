using GuidedDiffusion.Distributed;

namespace GuidedDiffusion.Tests.Distributed;

public class CommunicatorsTests
{
    [Theory]
    [InlineData("none")]
    [InlineData(" NONE ")]
    public void Create_None_IsSingleProcess(string mode)
    {
        using var communicator = Communicators.Create(mode);
        Assert.IsType<SingleProcessCommunicator>(communicator);
    }

    [Fact]
    public void Create_Auto_OutsideMpiexec_IsSingleProcess()
    {
        Assert.False(MpiLaunch.IsDetected(), "the test runner itself was started by an MPI launcher");
        using var communicator = Communicators.Create("auto");
        Assert.IsType<SingleProcessCommunicator>(communicator);
    }

    [Fact]
    public void Create_UnknownMode_NamesTheAcceptedModes()
    {
        var error = Assert.Throws<ArgumentException>(() => Communicators.Create("nccl"));
        Assert.Contains("'nccl'", error.Message);
        Assert.Contains("auto, none, mpi", error.Message);
    }

    [Theory]
    [InlineData("OMPI_COMM_WORLD_SIZE", "2", true)]
    [InlineData("PMIX_RANK", "0", true)]
    [InlineData("PMI_RANK", "1", true)]
    [InlineData("OMPI_COMM_WORLD_SIZE", "", false)]
    [InlineData("SLURM_PROCID", "0", false)]
    public void MpiLaunch_IsDetectedFromLauncherVariables(string name, string value, bool expected)
    {
        Assert.Equal(expected, MpiLaunch.IsDetected(variable => variable == name ? value : null));
    }

    [Fact]
    public void RunGuarded_OnOneRank_ReportsTheRankAndReturnsTheErrorCode()
    {
        var originalError = Console.Error;
        using var captured = new StringWriter();
        Console.SetError(captured);
        try
        {
            var code = Communicators.RunGuarded(new SingleProcessCommunicator(), () => throw new FileNotFoundException("data/x.png is missing"), errorCode: 3);
            Assert.Equal(3, code);
        }
        finally
        {
            Console.SetError(originalError);
        }
        Assert.Contains("rank 0: data/x.png is missing", captured.ToString());
    }

    [Fact]
    public void RunGuarded_PassesTheBodysExitCodeThrough()
    {
        Assert.Equal(7, Communicators.RunGuarded(new SingleProcessCommunicator(), () => 7));
    }

    [Theory]
    [InlineData(1, 16, 2, 1)] // mpirun's default: bound to one core
    [InlineData(4, 16, 2, 4)] // bound to a 4-core subset (e.g. --map-by socket)
    [InlineData(16, 16, 2, 8)] // --bind-to none: share the machine
    [InlineData(2, 2, 4, 1)] // oversubscribed: never below one thread
    [InlineData(8, 8, 1, 8)] // single process
    public void TorchThreads_CoresForRank(int allowed, int online, int localRanks, int expected)
    {
        Assert.Equal(expected, TorchThreads.CoresForRank(allowed, online, localRanks));
    }

    [Fact]
    public void TorchThreads_CoresForThisRank_IsPositive()
    {
        Assert.InRange(TorchThreads.CoresForThisRank(new SingleProcessCommunicator()), 1, Environment.ProcessorCount);
    }
}
