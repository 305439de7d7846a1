using GuidedDiffusion.Evaluation;

namespace GuidedDiffusion.Tests.Evaluation;

/// <summary>
/// The 95 % Wilson score interval against values worked by hand from (p + z²/2n ± z·sqrt(p(1 − p)/n + z²/4n²)) /
/// (1 + z²/n) with z = 1.959964: for 88/100, z² = 3.841459, the denominator 1.0384146, the centre
/// 0.899207/1.0384146 = 0.865942, the half-width 1.959964·sqrt(0.001056 + 0.0000960365)/1.0384146 = 0.064063.
/// </summary>
public sealed class WilsonIntervalTests
{
    [Theory]
    [InlineData(88, 100, 0.801879, 0.930006)]
    [InlineData(50, 100, 0.403832, 0.596168)]
    [InlineData(270, 300, 0.860834, 0.929052)]
    [InlineData(1, 2, 0.094531, 0.905469)]
    // At 0 and n successes one end is exactly 0 or 1 and the other z²/(n + z²) from it: 3.841459/13.841459 = 0.277533.
    [InlineData(0, 10, 0.0, 0.277533)]
    [InlineData(10, 10, 0.722467, 1.0)]
    public void Of_MatchesTheHandComputedInterval(int successes, int trials, double lower, double upper)
    {
        var interval = WilsonInterval.Of(successes, trials);
        Assert.Equal(lower, interval.Lower, 5e-7);
        Assert.Equal(upper, interval.Upper, 5e-7);
        Assert.InRange(interval.Lower, 0.0, successes / (double)trials);
        Assert.InRange(interval.Upper, successes / (double)trials, 1.0);
    }

    [Fact]
    public void Of_NarrowsWithMoreTrials_AndIsNaNWithoutTrials()
    {
        var small = WilsonInterval.Of(9, 10);
        var large = WilsonInterval.Of(900, 1000);
        Assert.True(large.Upper - large.Lower < (small.Upper - small.Lower) / 5);
        Assert.True(double.IsNaN(WilsonInterval.Of(0, 0).Lower) && double.IsNaN(WilsonInterval.Of(0, 0).Upper));
        Assert.Throws<ArgumentOutOfRangeException>(() => WilsonInterval.Of(11, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => WilsonInterval.Of(-1, 10));
    }
}
