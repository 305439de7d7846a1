using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Support;

/// <summary>Reads the golden files produced by the original code (copied under Reference/).</summary>
public static class Reference
{
    public static string Root { get; } = Path.Combine(AppContext.BaseDirectory, "Reference");

    public static string PathOf(string relative) => Path.Combine(Root, relative);

    public static JsonElement Json(string relative)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(PathOf(relative)));
        return doc.RootElement.Clone();
    }

    /// <summary>Loads every tensor of a safetensors file. Callers own (dispose) the tensors.</summary>
    public static Dictionary<string, Tensor> Tensors(string relative) =>
        TorchSharp.PyBridge.Safetensors.LoadStateDict(PathOf(relative));

    public static double[] Float64(this Tensor t) => t.to_type(ScalarType.Float64).data<double>().ToArray();

    public static float[] Float32(this Tensor t) => t.to_type(ScalarType.Float32).data<float>().ToArray();

    public static long[] Int64(this Tensor t) => t.to_type(ScalarType.Int64).data<long>().ToArray();

    /// <summary>Asserts |a-b| ≤ atol + rtol·|b| element-wise, reporting the worst element.</summary>
    public static void AssertClose(Tensor actual, Tensor expected, double rtol, double atol, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var a = actual.Float64();
        var e = expected.Float64();
        AssertClose(a, e, rtol, atol, what);
    }

    public static void AssertClose(double[] a, double[] e, double rtol, double atol, string what)
    {
        Assert.Equal(e.Length, a.Length);
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double excess = double.IsNaN(a[i]) != double.IsNaN(e[i])
                ? double.PositiveInfinity
                : Math.Abs(a[i] - e[i]) - (atol + rtol * Math.Abs(e[i]));
            if (excess > worstExcess) { worstExcess = excess; worst = i; }
        }
        Assert.True(worst < 0, worst < 0 ? "" : $"{what}: element {worst} is {a[worst]:R}, expected {e[worst]:R} (rtol {rtol}, atol {atol})");
    }
}
