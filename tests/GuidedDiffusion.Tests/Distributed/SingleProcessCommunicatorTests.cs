using GuidedDiffusion.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Distributed;

public class SingleProcessCommunicatorTests
{
    private readonly SingleProcessCommunicator _communicator = new();

    [Fact]
    public void Identity_IsRankZeroOfOne()
    {
        Assert.Equal(0, _communicator.Rank);
        Assert.Equal(1, _communicator.WorldSize);
        Assert.True(_communicator.IsMain);
        Assert.Equal(0, _communicator.LocalRank);
        Assert.Equal(1, _communicator.LocalSize);
    }

    [Fact]
    public void Collectives_LeaveValuesUnchanged()
    {
        using var scope = NewDisposeScope();
        var t = tensor(new float[] { 1, 2, 3 });
        _communicator.AllReduceSum(t);
        _communicator.AllReduceMean(t);
        _communicator.Broadcast(t);
        Assert.Equal(new float[] { 1, 2, 3 }, t.data<float>().ToArray());

        var values = new[] { 1.5, -2.0 };
        _communicator.AllReduceSum(values);
        _communicator.AllReduceMean(values);
        Assert.Equal(new[] { 1.5, -2.0 }, values);

        Assert.Equal(new[] { 42L }, _communicator.AllGather(42L));
        Assert.Equal(new[] { 0.5 }, _communicator.AllGather(0.5));
        Assert.Equal("meta", _communicator.Broadcast("meta"));
        Assert.Equal(new byte[] { 9 }, _communicator.Broadcast(new byte[] { 9 }));
        _communicator.Barrier();
    }

    [Fact]
    public void AllReduce_RejectsWhatMpiWouldReject()
    {
        using var scope = NewDisposeScope();
        var strided = zeros(2, 3).t();
        Assert.Contains("contiguous", Assert.Throws<ArgumentException>(() => _communicator.AllReduceSum(strided)).Message);
        Assert.Contains("float32 or float64", Assert.Throws<ArgumentException>(() => _communicator.AllReduceMean(zeros(3, dtype: int64))).Message);
        Assert.Contains("Float16", Assert.Throws<ArgumentException>(() => _communicator.AllReduceSum(zeros(3, dtype: float16))).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => _communicator.Broadcast(zeros(3), root: 1));
        Assert.Throws<ArgumentNullException>(() => _communicator.Broadcast((string?)null));
    }

    [Fact]
    public void GradientAllReducer_WithOneRank_KeepsGradients()
    {
        using var scope = NewDisposeScope();
        var linear = nn.Linear(3, 2);
        linear.call(ones(4, 3)).sum().backward();
        var before = linear.weight!.grad!.clone();
        using var reducer = new GradientAllReducer(_communicator, linear.parameters());
        reducer.AllReduceMean();
        Assert.True(linear.weight!.grad!.equal(before).all().item<bool>());
    }

    [Theory]
    [InlineData(GradientAllReducer.DefaultBucketBytes, 1)] // 6 + 2 floats fit in one bucket
    [InlineData(12, 3)] // 3-float buckets: 8 floats → 3 + 3 + 2, the weight straddles two buckets
    [InlineData(4, 8)] // one float per bucket
    public void GradientAllReducer_PlansBucketsOfAtMostTheBucketSize(long bucketBytes, int expectedBuckets)
    {
        using var scope = NewDisposeScope();
        var linear = nn.Linear(3, 2);
        using var reducer = new GradientAllReducer(_communicator, linear.parameters(), bucketBytes, GradientReduction.Bucketed);
        Assert.Equal(8, reducer.ElementCount);
        Assert.Equal(expectedBuckets, reducer.BucketCount);
    }

    [Fact]
    public void GradientAllReducer_Auto_IsInPlaceForFloat32CpuAndBucketedOtherwise()
    {
        using var scope = NewDisposeScope();
        using var cpuFloat32 = new GradientAllReducer(_communicator, nn.Linear(3, 2).parameters());
        Assert.Equal(GradientReduction.InPlace, cpuFloat32.Strategy);
        Assert.Equal(2, cpuFloat32.MessageCount);
        using var cpuFloat64 = new GradientAllReducer(_communicator, nn.Linear(3, 2).to(float64).parameters());
        Assert.Equal(GradientReduction.Bucketed, cpuFloat64.Strategy);
        Assert.Equal(1, cpuFloat64.MessageCount);
    }

    [Fact]
    public void GradientAllReducer_InPlaceNeedsFloat32CpuParameters()
    {
        using var scope = NewDisposeScope();
        var linear = nn.Linear(3, 2).to(float64);
        var error = Assert.Throws<ArgumentException>(() =>
            new GradientAllReducer(_communicator, linear.parameters(), strategy: GradientReduction.InPlace));
        Assert.Contains("Bucketed", error.Message);
    }

    [Fact]
    public void BroadcastParameters_WithOneRank_KeepsWeights()
    {
        using var scope = NewDisposeScope();
        var linear = nn.Linear(3, 2);
        var before = linear.weight!.clone();
        _communicator.BroadcastParameters(linear);
        Assert.True(linear.weight!.equal(before).all().item<bool>());
    }
}
