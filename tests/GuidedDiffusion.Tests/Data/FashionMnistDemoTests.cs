using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;

namespace GuidedDiffusion.Tests.Data;

public class FashionMnistDemoTests
{
    [Fact]
    public void Demo_Is9000Train1000Validation_TenNamedClasses_At32()
    {
        var demo = FashionMnistDemo.Load();
        Assert.Equal(9000, demo.Train.Count);
        Assert.Equal(1000, demo.Validation.Count);
        Assert.Equal(new[] { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot" }, demo.Classes.Names);
        Assert.Equal(Enumerable.Range(0, 10), Enumerable.Range(0, demo.Validation.Count).Select(demo.Validation.LabelOf).Distinct().Order());
        var image = demo.Train.Load(0);
        Assert.Equal((32, 32), (image.Width, image.Height));
    }

    [Fact]
    public void Demo_DigitsArePaddedWithBlack_NotStretched()
    {
        var demo = FashionMnistDemo.Load();
        using var batch = DataLoader.EnumerateOnce(demo.Validation, new DataOptions { ImageSize = 32, BatchSize = 16, NumWorkers = 1 }).First();
        Assert.Equal(new long[] { 16, 3, 32, 32 }, batch.Images.shape);
        var px = batch.Images.data<float>().ToArray();
        for (int i = 0; i < 16 * 3; i++)
        {
            var plane = px.AsSpan(i * 1024, 1024);
            for (int x = 0; x < 32; x++)
            {
                Assert.Equal(-1f, plane[x]);             // top border rows 0..1
                Assert.Equal(-1f, plane[32 + x]);
                Assert.Equal(-1f, plane[31 * 32 + x]);   // bottom rows 30..31
                Assert.Equal(-1f, plane[x * 32]);        // left column
                Assert.Equal(-1f, plane[x * 32 + 31]);   // right column
            }
        }
        Assert.True(px.Max() > 0.5f);
    }

    [Fact]
    public void Demo_IsFoundFromTheOutputFolder()
    {
        var dir = FashionMnistDemo.FindDataDirectory();
        Assert.True(File.Exists(Path.Combine(dir, "t10k-images-idx3-ubyte.gz")));
    }
}
