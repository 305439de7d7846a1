using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Foundation;

public class TorchSharpLoadsTests
{
    [Fact]
    public void TorchSharp_LoadsNativeLibrary_AndComputesMatmul()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 1, 2, 3, 4 }, new long[] { 2, 2 });
        var b = tensor(new float[] { 5, 6, 7, 8 }, new long[] { 2, 2 });
        var c = matmul(a, b);
        Assert.Equal(new float[] { 19, 22, 43, 50 }, c.data<float>().ToArray());
    }
}
