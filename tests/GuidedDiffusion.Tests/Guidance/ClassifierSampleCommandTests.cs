using System.Text.Json;
using GuidedDiffusion.Cli;
using GuidedDiffusion.Models;
using GuidedDiffusion.Training;
using GuidedDiffusion.Tests.Support;
using SkiaSharp;

namespace GuidedDiffusion.Tests.Guidance;

/// <summary>
/// <c>guided-diffusion classifier-sample</c> end to end on the tiny reference UNet (16², class-conditional,
/// learn_sigma) and the 5-class guidance classifier, with a few DDIM steps.
/// </summary>
public sealed class ClassifierSampleCommandTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), $"classifier-sample-{Guid.NewGuid():N}");

    public ClassifierSampleCommandTests()
    {
        Directory.CreateDirectory(folder);
        using var unet = GuidanceReference.LoadUNet(GuidanceReference.CondUNet);
        StateDictIO.Save(unet, UNetPath);
        using var classifier = GuidanceReference.LoadClassifier();
        StateDictIO.Save(classifier, ClassifierPath);
    }

    private string UNetPath => Path.Combine(folder, "unet.pt");
    private string ClassifierPath => Path.Combine(folder, "classifier.pt");

    public void Dispose() => Directory.Delete(folder, recursive: true);

    /// <summary>The command line for the tiny models; <paramref name="overrides"/> are flag/value pairs that replace
    /// or extend the defaults (an option may appear only once).</summary>
    private string[] Args(string outDir, params string[] overrides)
    {
        var flags = new List<(string Flag, string Value)>
        {
            ("--model_path", UNetPath), ("--classifier_path", ClassifierPath),
            ("--image_size", "16"), ("--num_channels", "32"), ("--num_res_blocks", "1"), ("--num_head_channels", "16"),
            ("--attention_resolutions", "16,8"), ("--channel_mult", "1,1"), ("--class_cond", "True"), ("--learn_sigma", "True"),
            ("--resblock_updown", "True"), ("--use_scale_shift_norm", "True"),
            ("--classifier_width", "32"), ("--classifier_depth", "1"), ("--classifier_attention_resolutions", "8"),
            ("--classifier_channel_mult", "1,1"), ("--classifier_num_head_channels", "16"), ("--classifier_pool", "attention"),
            ("--num_samples", "5"), ("--batch_size", "3"), ("--timestep_respacing", "ddim4"), ("--use_ddim", "True"),
            ("--classifier_scale", "10"), ("--out_dir", outDir),
        };
        for (int i = 0; i < overrides.Length; i += 2)
        {
            flags.RemoveAll(f => f.Flag == overrides[i]);
            flags.Add((overrides[i], overrides[i + 1]));
        }
        return new[] { "classifier-sample" }.Concat(flags.SelectMany(f => new[] { f.Flag, f.Value })).ToArray();
    }

    [Fact]
    public void ClassifierSample_WritesNpzAndPngGrid_SeededAndReproducible()
    {
        string first = Path.Combine(folder, "a"), second = Path.Combine(folder, "b");
        Assert.Equal(0, Program.BuildRoot().Parse(Args(first, "--seed", "7")).Invoke());
        Assert.Equal(0, Program.BuildRoot().Parse(Args(second, "--seed", "7")).Invoke());

        string npz = Path.Combine(first, "samples_5x16x16x3.npz");
        var arrays = NpzReader.Read(npz);
        Assert.Equal("|u1", arrays["arr_0.npy"].Descr);
        Assert.Equal(new long[] { 5, 16, 16, 3 }, arrays["arr_0.npy"].Shape);
        Assert.Equal("<i8", arrays["arr_1.npy"].Descr);
        Assert.Equal(new long[] { 5 }, arrays["arr_1.npy"].Shape);
        Assert.All(arrays["arr_1.npy"].Int64(), label => Assert.InRange(label, 0, 4));
        Assert.True(arrays["arr_0.npy"].Data.Distinct().Count() > 10, "the samples are images, not a constant");
        var again = NpzReader.Read(Path.Combine(second, "samples_5x16x16x3.npz"));
        Assert.Equal(arrays["arr_0.npy"].Data, again["arr_0.npy"].Data);
        Assert.Equal(arrays["arr_1.npy"].Data, again["arr_1.npy"].Data);

        using var grid = SKBitmap.Decode(Path.Combine(first, "samples_5x16x16x3.png"));
        Assert.NotNull(grid);
        Assert.Equal(3 * 16 + 4 * 2, grid.Width);  // 5 images: 3 columns, 2 rows, 2-pixel gutters
        Assert.Equal(2 * 16 + 3 * 2, grid.Height);
        Assert.Empty(Directory.GetFiles(first, ".*"));
    }

    [Fact]
    public void ClassifierSample_ClassId_GivesThatLabelEverywhere()
    {
        string outDir = Path.Combine(folder, "c");
        // Ancestral p_sample steps this time (no --use_ddim), over a 2-step respacing.
        Assert.Equal(0, Program.BuildRoot().Parse(Args(outDir, "--class_id", "3", "--num_samples", "2", "--timestep_respacing", "2", "--use_ddim", "False")).Invoke());
        var labels = NpzReader.Read(Path.Combine(outDir, "samples_2x16x16x3.npz"))["arr_1.npy"].Int64();
        Assert.Equal(new long[] { 3, 3 }, labels);
    }

    [Fact]
    public void ClassifierSample_ReadsTheClassifierArchitectureFromItsSidecar()
    {
        string classifier = Path.Combine(folder, "model000100.pt");
        File.Copy(ClassifierPath, classifier);
        var manifest = new CheckpointManifest
        {
            Classifier = new ClassifierConfig
            {
                ImageSize = 16,
                Width = 32,
                Depth = 1,
                AttentionResolutions = "8",
                ChannelMult = "1,1",
                NumHeadChannels = 16,
                NumClasses = 5,
            },
            Classes = new[] { "a", "b", "c", "d", "e" },
        };
        File.WriteAllText(CheckpointManifest.PathFor(classifier), JsonSerializer.Serialize(manifest, CheckpointManifest.JsonOptions));
        var args = Args(Path.Combine(folder, "f"), "--classifier_path", classifier, "--num_samples", "1", "--timestep_respacing", "ddim2").ToList();
        for (int i = args.Count - 2; i >= 1; i--)
        {
            if (args[i].StartsWith("--classifier_", StringComparison.Ordinal) && args[i] is not ("--classifier_path" or "--classifier_scale"))
                args.RemoveRange(i, 2);
        }
        Assert.DoesNotContain("--classifier_width", args);
        Assert.Equal(0, Program.BuildRoot().Parse(args.ToArray()).Invoke());
        Assert.True(File.Exists(Path.Combine(folder, "f", "samples_1x16x16x3.npz")));
    }

    [Fact]
    public void ClassifierSample_RejectsClassIdBeyondClassifier_AndWrongLearnSigma()
    {
        Assert.Equal(2, Program.BuildRoot().Parse(Args(Path.Combine(folder, "d"), "--class_id", "5")).Invoke());
        Assert.Equal(2, Program.BuildRoot().Parse(Args(Path.Combine(folder, "e"), "--learn_sigma", "False")).Invoke());
    }
}
