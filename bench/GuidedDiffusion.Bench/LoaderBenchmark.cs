using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Data;
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

        // Single-thread stages. The machine is shared, so besides wall-clock rates we report images per
        // CPU-second of this process, which other processes' load does not distort.
        foreach (var file in source.Files.Take(50)) ImageDecoder.Decode(file);
        var decoded = new List<GuidedDiffusion.Data.RgbImage>();
        var (decodeRate, decodeCpuRate) = Measure(source.Count, () =>
        {
            foreach (var file in source.Files) decoded.Add(ImageDecoder.Decode(file));
        });
        var stages = new List<(string What, double Rate, double CpuRate)> { ("decode only (SkiaSharp JPEG)", decodeRate, decodeCpuRate) };
        foreach (int size in new[] { 64, 256 })
        {
            var random = SampleRandom.ForSample(1, 0, 0);
            // One untimed round first, so the timed one runs fully optimised (tiered JIT).
            foreach (var image in decoded)
                GuidedDiffusion.Data.Transforms.ImagePreprocessor.Apply(image, size, randomCrop: true, randomFlip: true, random);
            var (rate, cpuRate) = Measure(decoded.Count, () =>
            {
                foreach (var image in decoded)
                    GuidedDiffusion.Data.Transforms.ImagePreprocessor.Apply(image, size, randomCrop: true, randomFlip: true, random);
            });
            stages.Add(($"crop+flip only, {size}² (no decode)", rate, cpuRate));
        }
        decoded.Clear();

        var rows = new List<(int Size, int Workers, double Rate, double CpuRate)>();
        foreach (int size in new[] { 64, 256 })
        {
            foreach (int workers in new[] { 1, 2 })
            {
                var options = new DataOptions { ImageSize = size, BatchSize = batchSize, NumWorkers = workers, RandomCrop = true, RandomFlip = true, Seed = 1 };
                using var loader = new DataLoader(source, options);
                loader.Next().Dispose();   // warm-up: threads started, JIT done
                var (rate, cpuRate) = Measure(batches * batchSize, () =>
                {
                    for (int b = 0; b < batches; b++) loader.Next().Dispose();
                });
                rows.Add((size, workers, rate, cpuRate));
            }
        }

        Console.WriteLine();
        Console.WriteLine("| what                                   | threads | images/s (wall) | images per CPU-s |");
        Console.WriteLine("|----------------------------------------|---------|-----------------|------------------|");
        foreach (var (what, rate, cpuRate) in stages)
            Console.WriteLine($"| {what,-38} | {1,7} | {rate,15:F1} | {cpuRate,16:F1} |");
        foreach (var (size, workers, rate, cpuRate) in rows)
            Console.WriteLine($"| {$"loader, random crop {size}², batch {batchSize}",-38} | {workers,7} | {rate,15:F1} | {cpuRate,16:F1} |");

        var json = new Dictionary<string, object>
        {
            ["benchmark"] = "loader",
            ["images"] = source.Count,
            ["image_wh"] = new[] { 500, 375 },
            ["processors"] = Environment.ProcessorCount,
            ["batch_size"] = batchSize,
            ["load_average_1min"] = LoadAverage(),
            ["decode_only_images_per_s"] = Math.Round(decodeRate, 1),
            ["decode_only_images_per_cpu_s"] = Math.Round(decodeCpuRate, 1),
            ["crop64_only_images_per_cpu_s"] = Math.Round(stages[1].CpuRate, 1),
            ["crop256_only_images_per_cpu_s"] = Math.Round(stages[2].CpuRate, 1),
        };
        foreach (var (size, workers, rate, cpuRate) in rows)
        {
            json[$"random_crop_{size}_workers_{workers}_images_per_s"] = Math.Round(rate, 1);
            json[$"random_crop_{size}_workers_{workers}_images_per_cpu_s"] = Math.Round(cpuRate, 1);
        }
        Console.WriteLine($"load average (1 min) at the end: {json["load_average_1min"]}");
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

    private static (double PerSecond, double PerCpuSecond) Measure(int items, Action action)
    {
        var process = Process.GetCurrentProcess();
        var cpu0 = process.TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        action();
        double wall = sw.Elapsed.TotalSeconds;
        process.Refresh();
        double cpu = (process.TotalProcessorTime - cpu0).TotalSeconds;
        return (items / wall, items / cpu);
    }

    private static double LoadAverage()
    {
        try
        {
            var first = File.ReadAllText("/proc/loadavg").Split(' ')[0];
            return double.Parse(first, CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return double.NaN;
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
