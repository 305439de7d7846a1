using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Sources;

namespace GuidedDiffusion.Tests.Data;

public class IdxSourceTests
{
    private static byte[] Idx(byte rank, int[] shape, byte[] data) =>
        [0, 0, 8, rank, .. shape.SelectMany(d => new[] { (byte)(d >> 24), (byte)(d >> 16), (byte)(d >> 8), (byte)d }), .. data];

    [Fact]
    public void PlainIdx_GrayExpandsToRgb_AndPadsWithBlack()
    {
        var dir = TestImages.TempDir();
        var images = Path.Combine(dir, "images-idx3-ubyte");
        var labels = Path.Combine(dir, "labels-idx1-ubyte");
        File.WriteAllBytes(images, Idx(3, [2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]));
        File.WriteAllBytes(labels, Idx(1, [2], [1, 0]));

        var source = IdxImageSource.Open(images, labels);
        Assert.Equal(new[] { "0", "1" }, source.Classes.Names);
        Assert.Equal(1, source.LabelOf(0));
        Assert.Equal(new byte[] { 5, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8 }, source.Load(1).Pixels);

        var padded = IdxImageSource.Open(images, labels, padTo: 4).Load(0);
        Assert.Equal((4, 4), (padded.Width, padded.Height));
        Assert.Equal(0, padded.Pixels[0]);
        Assert.Equal(1, padded.Pixels[(1 * 4 + 1) * 3]);   // the 2×2 image sits at (1,1)
    }

    [Fact]
    public void MalformedIdx_FailsNamingTheFile()
    {
        var dir = TestImages.TempDir();
        var images = Path.Combine(dir, "broken-idx3-ubyte");
        var labels = Path.Combine(dir, "labels-idx1-ubyte");
        File.WriteAllBytes(images, Idx(3, [2, 2, 2], [1, 2, 3]));
        File.WriteAllBytes(labels, Idx(1, [2], [1, 0]));
        var e = Assert.Throws<DatasetException>(() => IdxImageSource.Open(images, labels));
        Assert.Contains(images, e.Message);
        Assert.Contains("should hold 8 bytes", e.Message);
    }

    [Fact]
    public void IdxWithSizesAboveIntMax_IsRefused()
    {
        // Found by fuzzing (fuzz/crashes/idx): sizes 0xFFFFFFFF × 0xFFFFFFFC read as -1 × -4 = the 4 data bytes.
        var path = Path.Combine(TestImages.TempDir(), "negative.idx");
        File.WriteAllBytes(path, [0, 0, 8, 2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFC, 1, 2, 3, 4]);
        var e = Assert.Throws<DatasetException>(() => IdxFile.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("4294967295", e.Message);
    }
}
