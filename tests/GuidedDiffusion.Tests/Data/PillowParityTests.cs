using System.Text.Json;
using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Resampling;
using GuidedDiffusion.Data.Transforms;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Data;

/// <summary>Decoding and preprocessing must equal Pillow 9.4 + the original's crop code bit for bit.</summary>
public class PillowParityTests
{
    public static TheoryData<string> ImageCases()
    {
        var data = new TheoryData<string>();
        foreach (var image in Reference.Json("images/preprocessing.json").GetProperty("images").EnumerateArray())
            data.Add(image.GetProperty("name").GetString()!);
        return data;
    }

    public static TheoryData<string, int> ImageSizeCases()
    {
        var data = new TheoryData<string, int>();
        foreach (var image in Reference.Json("images/preprocessing.json").GetProperty("images").EnumerateArray())
            foreach (int size in new[] { 64, 32 })
                data.Add(image.GetProperty("name").GetString()!, size);
        return data;
    }

    private static JsonElement CaseJson(string name) =>
        Reference.Json("images/preprocessing.json").GetProperty("images").EnumerateArray()
            .First(e => e.GetProperty("name").GetString() == name);

    private static RgbImage DecodeSource(string name) =>
        ImageDecoder.Decode(Reference.PathOf("images/" + CaseJson(name).GetProperty("file").GetString()));

    internal static byte[] Bytes(Tensor t) => t.data<byte>().ToArray();

    internal static void AssertSameImage(Tensor expectedHwc, RgbImage actual, string what)
    {
        Assert.Equal(new long[] { actual.Height, actual.Width, 3 }, expectedHwc.shape);
        var expected = Bytes(expectedHwc);
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] != actual.Pixels[i])
            {
                int pixel = i / 3;
                int diffs = expected.Where((v, j) => v != actual.Pixels[j]).Count();
                Assert.Fail($"{what}: {diffs} bytes differ; first at y={pixel / actual.Width} x={pixel % actual.Width} c={i % 3}: {actual.Pixels[i]} vs expected {expected[i]}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(ImageCases))]
    public void Decode_MatchesPilConvertRgb(string name)
    {
        var image = DecodeSource(name);
        var json = CaseJson(name);
        Assert.Equal(json.GetProperty("width").GetInt32(), image.Width);
        Assert.Equal(json.GetProperty("height").GetInt32(), image.Height);
        var tensors = Reference.Tensors($"images/{name}.safetensors");
        try
        {
            if (tensors.TryGetValue("decoded_rgb", out var decoded))
            {
                AssertSameImage(decoded, image, $"{name} decoded_rgb");
            }
            else
            {
                // RGB sources have no decoded_rgb; the first stored stage must follow from exact pixels, checked below.
                Assert.Equal("RGB", json.GetProperty("mode_on_disk").GetString());
            }
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(ImageSizeCases))]
    public void CenterCrop_MatchesPillow_EveryStage(string name, int size)
    {
        var source = DecodeSource(name);
        var tensors = Reference.Tensors($"images/{name}.safetensors");
        try
        {
            var halvings = new List<RgbImage>();
            var resized = ShortSideResize.Apply(source, size, halvings.Add);
            int expectedHalvings = tensors.Keys.Count(k => k.StartsWith($"s{size}/box_halving_", StringComparison.Ordinal));
            Assert.Equal(expectedHalvings, halvings.Count);
            for (int k = 0; k < halvings.Count; k++)
                AssertSameImage(tensors[$"s{size}/box_halving_{k}"], halvings[k], $"{name} s{size} box halving {k}");
            AssertSameImage(tensors[$"s{size}/bicubic_resized"], resized, $"{name} s{size} bicubic");

            var crop = CenterCrop.Apply(source, size);
            AssertSameImage(tensors[$"s{size}/center_crop_uint8_hwc"], crop, $"{name} s{size} centre crop");

            var normalized = ToTensorLayout.NormalizeToChw(crop);
            var expected = tensors[$"s{size}/normalized_f32_chw"].data<float>().ToArray();
            Assert.Equal(expected, normalized);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    public static TheoryData<string> RandomCropCases()
    {
        var data = new TheoryData<string>();
        foreach (var c in Reference.Json("images/preprocessing.json").GetProperty("random_crop_cases").EnumerateArray())
            data.Add(c.GetProperty("case").GetString()!);
        return data;
    }

    [Theory]
    [MemberData(nameof(RandomCropCases))]
    public void RandomCrop_WithPinnedDraws_MatchesReference_AndFlipped(string caseName)
    {
        var c = Reference.Json("images/preprocessing.json").GetProperty("random_crop_cases").EnumerateArray()
            .First(e => e.GetProperty("case").GetString() == caseName);
        int size = c.GetProperty("image_size").GetInt32();
        var range = c.GetProperty("smaller_dim_size_range_inclusive");
        var pinned = new Queue<int>(new[]
        {
            c.GetProperty("pinned_smaller_dim_size").GetInt32(),
            c.GetProperty("pinned_crop_y").GetInt32(),
            c.GetProperty("pinned_crop_x").GetInt32(),
        });
        var calls = new List<(int Start, int Stop)>();
        int Draw(int start, int stop)
        {
            calls.Add((start, stop));
            int v = pinned.Dequeue();
            Assert.InRange(v, start, stop - 1);
            return v;
        }

        var source = ImageDecoder.Decode(Reference.PathOf("images/" + c.GetProperty("image").GetString()));
        var crop = RandomCrop.Apply(source, size, Draw);

        Assert.Equal((range[0].GetInt32(), range[1].GetInt32() + 1), calls[0]);
        Assert.Equal(3, calls.Count);
        var tensors = Reference.Tensors($"images/{caseName}.safetensors");
        try
        {
            var keys = string.Join(",", tensors.Keys);
            var plain = tensors.First(kv => !kv.Key.Contains("flip", StringComparison.Ordinal)).Value;
            var flipped = tensors.First(kv => kv.Key.Contains("flip", StringComparison.Ordinal)).Value;
            AssertSameImage(plain, crop, $"{caseName} ({keys})");
            AssertSameImage(flipped, HorizontalFlip.Apply(crop), $"{caseName} flipped");
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
