using System.Text.Json;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Models;
using GuidedDiffusion.Training;
using SkiaSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Fuzz;

/// <summary>
/// Writes the seed corpora (<c>guided-diffusion-fuzz --write-seeds fuzz/corpus</c>): small valid files of each
/// format, made by the same writers and encoders the tests use, so the fuzzer starts from inputs that parse.
/// </summary>
public static class Seeds
{
    /// <summary>Writes one folder per target under <paramref name="root"/>.</summary>
    public static void Write(string root)
    {
        string Dir(string target) => Directory.CreateDirectory(Path.Combine(root, target)).FullName;

        var image = Dir("image");
        using (var bitmap = new SKBitmap(new SKImageInfo(6, 4, SKColorType.Rgba8888, SKAlphaType.Unpremul)))
        {
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 6; x++) bitmap.SetPixel(x, y, new SKColor((byte)(40 * x), (byte)(60 * y), 90, (byte)(x == 0 ? 0 : 255)));
            File.WriteAllBytes(Path.Combine(image, "rgba.png"), bitmap.Encode(SKEncodedImageFormat.Png, 100).ToArray());
            File.WriteAllBytes(Path.Combine(image, "rgb.jpg"), bitmap.Encode(SKEncodedImageFormat.Jpeg, 80).ToArray());
        }
        // The smallest GIF with a transparent index (GifTransparency reads it).
        File.WriteAllBytes(Path.Combine(image, "transparent.gif"), Convert.FromBase64String("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="));

        // IDX: 2 images of 2×3 unsigned bytes.
        File.WriteAllBytes(Path.Combine(Dir("idx"), "images.idx"), [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        File.WriteAllBytes(Path.Combine(Dir("idx"), "labels.idx"), [0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2]);

        NpzWriter.Write(Path.Combine(Dir("npz"), "samples_2x2x2x3.npz"),
            NpzWriter.UInt8(Enumerable.Range(0, 24).Select(i => (byte)(i * 10)).ToArray(), 2, 2, 2, 3),
            NpzWriter.Int64([3, 7], 2));

        using (var scope = NewDisposeScope())
        {
            var dict = new Dictionary<string, Tensor> { ["conv.weight"] = arange(6, ScalarType.Float32).reshape(2, 3), ["conv.bias"] = tensor(new[] { 1.5f, -2f }) };
            StateDictIO.Write(Path.Combine(Dir("safetensors"), "tiny.safetensors"), dict);
            StateDictIO.Write(Path.Combine(Dir("pt"), "tiny.pt"), dict);
        }

        var manifest = new CheckpointManifest
        {
            CompletedSteps = 20,
            Classifier = new ClassifierConfig { ImageSize = 32, ChannelMult = "1,2", Width = 32, Depth = 1, AttentionResolutions = "16", NumClasses = 2 },
            Classes = ["cat", "dog"],
            SamplerHistory = [[0.5, 0.25]],
            SamplerCounts = [2],
            LgLossScale = 20,
            Versions = CheckpointManifest.CurrentVersions(),
        };
        File.WriteAllText(Path.Combine(Dir("sidecar"), "model000019.json"), JsonSerializer.Serialize(manifest, CheckpointManifest.JsonOptions));
    }
}
