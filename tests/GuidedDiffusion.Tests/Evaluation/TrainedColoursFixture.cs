using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using GuidedDiffusion.Training;
using SkiaSharp;

namespace GuidedDiffusion.Tests.Evaluation;

/// <summary>
/// A checkpoint with known behaviour, trained once for the Evaluation tests: four classes of solid colours
/// (red, green, blue, yellow with brightness jitter and pixel noise), 32×32 PNGs named like red_001.png, a tiny
/// noised classifier trained for a few dozen steps. Clean-ish images are easy; at t near T they are not.
/// </summary>
public sealed class TrainedColoursFixture : IDisposable
{
    public static readonly string[] ColourNames = ["blue", "green", "red", "yellow"];

    public static ClassifierConfig TinyConfig { get; } = new()
    {
        ImageSize = 32,
        ChannelMult = [1, 2],
        Width = 32,
        Depth = 1,
        AttentionResolutions = [16],
        NumHeadChannels = 32,
        NumClasses = null,
    };

    /// <summary>Validation images per class (kept small: the machine running the tests has two cores).</summary>
    public const int ValPerClass = 6;

    public TrainedColoursFixture()
    {
        Root = Path.Combine(Path.GetTempPath(), "gd-eval-" + Guid.NewGuid().ToString("N"));
        TrainDir = Path.Combine(Root, "train");
        ValDir = Path.Combine(Root, "val");
        RunDir = Path.Combine(Root, "run");
        WriteColours(TrainDir, perClass: 24, seed: 1);
        WriteColours(ValDir, perClass: ValPerClass, seed: 2);
        var training = new TrainingConfig
        {
            Data = new() { DataDir = TrainDir, BatchSize = 16, NumWorkers = 0 },
            Objective = new() { Noised = true },
            Length = new() { Iterations = 40 },
            Optimizer = new() { Lr = 1e-3 },
            Checkpoints = new() { LogInterval = 10, SaveInterval = 10_000, LogDir = RunDir },
            Validation = new() { ValDataDir = ValDir, EvalInterval = 10 },
        };
        var result = new ClassifierTrainingJob(training, TinyConfig, new DiffusionConfig()).Run();
        ModelPath = result.LastCheckpoint;
    }

    public string Root { get; }
    public string TrainDir { get; }
    public string ValDir { get; }
    public string RunDir { get; }

    /// <summary>The trained modelNNNNNN.pt (with its JSON sidecar).</summary>
    public string ModelPath { get; }

    public string NewTempDir(string name)
    {
        var dir = Path.Combine(Root, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static void WriteColours(string dir, int perClass, int seed)
    {
        Directory.CreateDirectory(dir);
        var random = new Random(seed);
        var colours = new Dictionary<string, (int R, int G, int B)>
        {
            ["blue"] = (30, 40, 220),
            ["green"] = (30, 200, 40),
            ["red"] = (220, 30, 30),
            ["yellow"] = (230, 220, 30),
        };
        foreach (var (name, (r, g, b)) in colours)
            for (int i = 0; i < perClass; i++)
            {
                double brightness = 0.7 + 0.3 * random.NextDouble();
                using var bitmap = new SKBitmap(new SKImageInfo(32, 32, SKColorType.Rgba8888, SKAlphaType.Unpremul));
                for (int y = 0; y < 32; y++)
                    for (int x = 0; x < 32; x++)
                    {
                        int n = random.Next(-20, 21);
                        bitmap.SetPixel(x, y, new SKColor(Clip(r * brightness + n), Clip(g * brightness + n), Clip(b * brightness + n)));
                    }
                using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
                File.WriteAllBytes(Path.Combine(dir, $"{name}_{i:000}.png"), data.ToArray());
            }
    }

    private static byte Clip(double v) => (byte)Math.Clamp((int)Math.Round(v), 0, 255);

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); }
        catch (IOException) { }
    }
}
