using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Training;
using SkiaSharp;

namespace GuidedDiffusion.Tests.Training;

/// <summary>Generated image folders and small configs shared by the training tests.</summary>
public static class TrainingFixtures
{
    private static readonly SKColor[] Palette =
    {
        new(230, 40, 40), new(40, 200, 60), new(50, 70, 230), new(240, 220, 40),
        new(200, 60, 220), new(40, 210, 220), new(250, 150, 40), new(120, 120, 120),
    };

    /// <summary>
    /// <paramref name="classes"/> classes × <paramref name="perClass"/> PNGs named class_NNN.png: each class a
    /// colour with a class-dependent stripe pattern plus per-image jitter, easy to learn.
    /// </summary>
    public static string ImageFolder(int classes, int perClass, int size = 64, int seed = 0)
    {
        var dir = TestImages.TempDir();
        var random = new Random(seed);
        for (int c = 0; c < classes; c++)
            for (int i = 0; i < perClass; i++)
            {
                int jitter = random.Next(-25, 25), period = 4 + 2 * c;
                var baseColor = Palette[c % Palette.Length];
                var png = TestImages.Png(size, size, (x, y) =>
                {
                    bool stripe = (x / period) % 2 == 0;
                    byte Shift(byte v, int d) => (byte)Math.Clamp(v + d + (stripe ? 30 : -30), 0, 255);
                    return new SKColor(Shift(baseColor.Red, jitter), Shift(baseColor.Green, jitter), Shift(baseColor.Blue, jitter));
                });
                File.WriteAllBytes(Path.Combine(dir, $"class{c}_{i:D3}.png"), png);
            }
        return dir;
    }

    /// <summary>A small 64×64 classifier (width 32, depth 1; null classes: the data's count) that trains in about a second per step on 2 cores.</summary>
    public static ClassifierConfig SmallClassifier(int? numClasses) => new()
    {
        ImageSize = 64,
        Width = 32,
        Depth = 1,
        AttentionResolutions = [8],
        NumHeadChannels = 32,
        NumClasses = numClasses,
    };

    /// <summary>Loop flags for short test runs writing into <paramref name="logDir"/>.</summary>
    public static TrainingConfig ShortRun(string dataDir, string valDir, string logDir, int iterations) => new()
    {
        Seed = 3,
        Data = new() { DataDir = dataDir, BatchSize = 8, NumWorkers = 1 },
        Length = new() { Iterations = iterations },
        Optimizer = new() { Lr = 1e-4 },
        Checkpoints = new() { LogDir = logDir, LogInterval = 5, SaveInterval = 10 },
        Validation = new() { ValDataDir = valDir, EvalInterval = 5, EvalTable = false },
    };

    /// <summary>The default diffusion (linear, 1000 steps).</summary>
    public static DiffusionConfig Diffusion => new();
}
