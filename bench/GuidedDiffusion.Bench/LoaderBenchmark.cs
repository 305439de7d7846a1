using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
using SkiaSharp;

namespace GuidedDiffusion.Bench;

/// <summary>
/// Data-loader throughput on a generated folder of 500×375 JPEGs (ImageNet's typical size): decode-only
/// rate on one thread, then random-crop batches at 64² and 256² with 1 and 2 workers.
/// </summary>
internal static class LoaderBenchmark
{
    public static int Run(string[] args)
    {
        int images = IntOption(args, "--images", 200);
        int batchSize = IntOption(args, "--batch", 32);
        int batches = IntOption(args, "--batches", 12);
        string dir = StringOption(args, "--dir", Path.Combine(Path.GetTempPath(), "gd-bench-jpeg-500x375"));

        GenerateJpegs(dir, images);
        var source = new ImageFolderSource(dir);
        Console.WriteLine($"{source.Count} JPEGs 500×375 in {dir}; {Environment.ProcessorCount} processors; batch {batchSize}, {batches} timed batches per row");

        // Decode only: every file once after one warm-up pass over a few files.
        for (int i = 0; i < Math.Min(10, source.Count); i++) ImageDecoder.Decode(source.Files[i]);
        var sw = Stopwatch.StartNew();
        foreach (var file in source.Files) ImageDecoder.Decode(file);
        double decodeRate = source.Count / sw.Elapsed.TotalSeconds;

        var rows = new List<(int Size, int Workers, double Rate)>();
        foreach (int size in new[] { 64, 256 })
        {
            foreach (int workers in new[] { 1, 2 })
            {
                var options = new DataOptions { ImageSize = size, BatchSize = batchSize, NumWorkers = workers, RandomCrop = true, RandomFlip = true, Seed = 1 };
                using var loader = new DataLoader(source, options);
                loader.Next().Dispose();   // warm-up: threads started, JIT done
                sw.Restart();
                for (int b = 0; b < batches; b++) loader.Next().Dispose();
                rows.Add((size, workers, batches * batchSize / sw.Elapsed.TotalSeconds));
            }
        }

        Console.WriteLine();
        Console.WriteLine("| what                         | workers | images/s |");
        Console.WriteLine("|------------------------------|---------|----------|");
        Console.WriteLine($"| decode only (SkiaSharp)      |       1 | {decodeRate,8:F1} |");
        foreach (var (size, workers, rate) in rows)
            Console.WriteLine($"| loader random crop {size,3}×{size,-3}  | {workers,7} | {rate,8:F1} |");

        var json = new Dictionary<string, object>
        {
            ["benchmark"] = "loader",
            ["images"] = source.Count,
            ["image_wh"] = new[] { 500, 375 },
            ["processors"] = Environment.ProcessorCount,
            ["batch_size"] = batchSize,
            ["decode_only_images_per_s"] = Math.Round(decodeRate, 1),
        };
        foreach (var (size, workers, rate) in rows)
            json[$"random_crop_{size}_workers_{workers}_images_per_s"] = Math.Round(rate, 1);
        Console.WriteLine(JsonSerializer.Serialize(json));
        return 0;
    }

    private static void GenerateJpegs(string dir, int count)
    {
        Directory.CreateDirectory(dir);
        var random = new Random(12345);
        for (int i = 0; i < count; i++)
        {
            // Two classes so the folder is a valid classification set.
            var path = Path.Combine(dir, $"{(i % 2 == 0 ? "even" : "odd")}_{i:D5}.jpg");
            if (File.Exists(path)) continue;
            using var surface = SKSurface.Create(new SKImageInfo(500, 375, SKColorType.Rgba8888, SKAlphaType.Premul));
            var canvas = surface.Canvas;
            using (var paint = new SKPaint())
            {
                paint.Shader = SKShader.CreateLinearGradient(
                    new SKPoint(0, 0), new SKPoint(500, 375),
                    [RandomColor(random), RandomColor(random)], SKShaderTileMode.Clamp);
                canvas.DrawRect(0, 0, 500, 375, paint);
            }
            using (var paint = new SKPaint { IsAntialias = true })
            {
                for (int c = 0; c < 40; c++)
                {
                    paint.Color = RandomColor(random).WithAlpha((byte)random.Next(80, 255));
                    canvas.DrawCircle(random.Next(500), random.Next(375), random.Next(5, 80), paint);
                }
            }
            // Pixel noise, so the JPEG has realistic high-frequency content to decode.
            using var image = surface.Snapshot();
            using var bitmap = SKBitmap.FromImage(image);
            var pixels = bitmap.Bytes;
            for (int p = 0; p < pixels.Length; p++)
                if ((p & 3) != 3) pixels[p] = (byte)Math.Clamp(pixels[p] + random.Next(-20, 21), 0, 255);
            using var noisy = new SKBitmap(bitmap.Info);
            System.Runtime.InteropServices.Marshal.Copy(pixels, 0, noisy.GetPixels(), pixels.Length);
            using var data = noisy.Encode(SKEncodedImageFormat.Jpeg, 90);
            File.WriteAllBytes(path, data.ToArray());
        }
    }

    private static SKColor RandomColor(Random r) => new((byte)r.Next(256), (byte)r.Next(256), (byte)r.Next(256));

    private static int IntOption(string[] args, string name, int fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }

    private static string StringOption(string[] args, string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }
}
