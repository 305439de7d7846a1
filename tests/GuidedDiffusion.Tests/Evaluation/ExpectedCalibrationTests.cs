using GuidedDiffusion.Evaluation;

namespace GuidedDiffusion.Tests.Evaluation;

public sealed class ExpectedCalibrationTests
{
    [Fact]
    public void Ece_HandComputedExample()
    {
        // Bin (0.6, 0.667]: 0.65 and 0.62, one right → |0.5 − 0.635| = 0.135, weight 2/4.
        // Bin (0.933, 1]: 0.95 and 1.0, both right → |1 − 0.975| = 0.025, weight 2/4.
        double ece = ExpectedCalibration.Compute([0.65, 0.62, 0.95, 1.0], [true, false, true, true]);
        Assert.Equal(0.5 * 0.135 + 0.5 * 0.025, ece, 12);
    }

    [Fact]
    public void Ece_IsZeroWhenConfidenceMatchesAccuracy_AndBinsAreRightClosed()
    {
        Assert.Equal(0, ExpectedCalibration.Compute([1.0, 1.0], [true, true]), 12);
        Assert.Equal(0, ExpectedCalibration.Compute([0.5, 0.5], [true, false]), 12);
        Assert.Equal(0, ExpectedCalibration.Compute([], []));
        Assert.Equal(7, ExpectedCalibration.BinOf(8.0 / 15, 15)); // 8/15 is the upper edge of bin 7
        Assert.Equal(8, ExpectedCalibration.BinOf(8.0 / 15 + 1e-9, 15));
        Assert.Equal(0, ExpectedCalibration.BinOf(0, 15));
        Assert.Equal(14, ExpectedCalibration.BinOf(1, 15));
    }

    [Fact]
    public void Ece_OverconfidentWrongAnswersCostTheirConfidence()
    {
        Assert.Equal(0.9, ExpectedCalibration.Compute([0.9, 0.9, 0.9], [false, false, false]), 12);
    }
}
