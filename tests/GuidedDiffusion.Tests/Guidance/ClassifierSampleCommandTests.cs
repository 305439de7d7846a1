using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Cli;
using GuidedDiffusion.Formats;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Diffusion.Solvers;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Cli;
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
        Assert.Equal("|u1", arrays["arr_0"].Descr);
        Assert.Equal(new long[] { 5, 16, 16, 3 }, arrays["arr_0"].Shape);
        Assert.Equal("<i8", arrays["arr_1"].Descr);
        Assert.Equal(new long[] { 5 }, arrays["arr_1"].Shape);
        Assert.All(NpzReader.ToInt64(arrays["arr_1"]), label => Assert.InRange(label, 0, 4));
        Assert.True(arrays["arr_0"].Data.Distinct().Count() > 10, "the samples are images, not a constant");
        var again = NpzReader.Read(Path.Combine(second, "samples_5x16x16x3.npz"));
        Assert.Equal(arrays["arr_0"].Data, again["arr_0"].Data);
        Assert.Equal(arrays["arr_1"].Data, again["arr_1"].Data);

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
        var labels = NpzReader.ToInt64(NpzReader.Read(Path.Combine(outDir, "samples_2x16x16x3.npz"))["arr_1"]);
        Assert.Equal(new long[] { 3, 3 }, labels);
    }

    [Fact]
    public void ClassifierSample_ReadsTheClassifierArchitectureFromItsSidecar()
    {
        string classifier = Path.Combine(folder, "model000100.pt");
        File.Copy(ClassifierPath, classifier);
        var manifest = new CheckpointManifest
        {
            Classifier = TinyClassifier,
            Classes = new[] { "a", "b", "c", "d", "e" },
        };
        File.WriteAllText(CheckpointManifest.PathFor(classifier), JsonSerializer.Serialize(manifest, CheckpointManifest.JsonOptions));
        var args = Args(Path.Combine(folder, "f"), "--classifier_path", classifier, "--num_samples", "1", "--timestep_respacing", "ddim2").ToList();
        args = StripClassifierFlags(args.ToArray()).ToList();
        Assert.DoesNotContain("--classifier_width", args);
        Assert.Equal(0, Program.BuildRoot().Parse(args.ToArray()).Invoke());
        Assert.True(File.Exists(Path.Combine(folder, "f", "samples_1x16x16x3.npz")));
    }

    /// <summary>The tiny classifier's architecture as classifier-train records it in a sidecar.</summary>
    internal static readonly ClassifierConfig TinyClassifier = new()
    {
        ImageSize = 16,
        Width = 32,
        Depth = 1,
        AttentionResolutions = [8],
        ChannelMult = [1, 1],
        NumHeadChannels = 16,
        NumClasses = 5,
    };

    /// <summary>The tiny UNet's architecture as image-train records it in a sidecar.</summary>
    internal static readonly DiffusionModelConfig TinyUNet = new()
    {
        ImageSize = 16,
        NumChannels = 32,
        NumResBlocks = 1,
        NumHeadChannels = 16,
        AttentionResolutions = [16, 8],
        ChannelMult = [1, 1],
        ClassCond = true,
        LearnSigma = true,
        ResblockUpdown = true,
        UseScaleShiftNorm = true,
    };

    /// <summary>The arguments without the diffusion model's architecture and noise-process flags.</summary>
    private string[] WithoutModelFlags(string[] args, params string[] keep)
    {
        var modelFlags = new[] { "--image_size", "--num_channels", "--num_res_blocks", "--num_head_channels", "--attention_resolutions",
            "--channel_mult", "--class_cond", "--learn_sigma", "--resblock_updown", "--use_scale_shift_norm" };
        var list = args.ToList();
        for (int i = list.Count - 2; i >= 1; i--)
            if (modelFlags.Contains(list[i]) && !keep.Contains(list[i])) list.RemoveRange(i, 2);
        return list.ToArray();
    }

    [Fact]
    public void ClassifierSample_ReadsAnEmaCheckpointsArchitectureFromTheSavesSidecar_AndRejectsDisagreeingFlags()
    {
        // image-train saves ema_RATE_NNNNNN.pt next to modelNNNNNN.pt, whose sidecar describes both.
        string ema = Path.Combine(folder, "ema_0.9999_000200.pt");
        File.Copy(UNetPath, ema);
        var manifest = new CheckpointManifest { DiffusionModel = TinyUNet, Diffusion = new DiffusionConfig { LearnSigma = true } };
        File.WriteAllText(Path.Combine(folder, "model000200.json"), JsonSerializer.Serialize(manifest, CheckpointManifest.JsonOptions));
        Assert.Equal(Path.Combine(folder, "model000200.json"), CheckpointManifest.Find(ema));

        string outDir = Path.Combine(folder, "ema");
        var args = WithoutModelFlags(Args(outDir, "--model_path", ema, "--num_samples", "1", "--seed", "7"));
        Assert.DoesNotContain("--num_channels", args);
        Assert.Equal(0, Program.BuildRoot().Parse(args).Invoke());
        // Same weights, same seed: the same sample as with every flag typed out.
        string typed = Path.Combine(folder, "typed");
        Assert.Equal(0, Program.BuildRoot().Parse(Args(typed, "--num_samples", "1", "--seed", "7")).Invoke());
        Assert.Equal(NpzReader.Read(Path.Combine(typed, "samples_1x16x16x3.npz"))["arr_0"].Data,
            NpzReader.Read(Path.Combine(outDir, "samples_1x16x16x3.npz"))["arr_0"].Data);

        var disagreeing = WithoutModelFlags(Args(Path.Combine(folder, "bad"), "--model_path", ema, "--num_channels", "64"), keep: "--num_channels");
        Assert.Equal(2, Program.BuildRoot().Parse(disagreeing).Invoke());
    }

    [Fact]
    public void ClassifierSample_RefusesAClassifierTrainedOnAnotherNumberOfDiffusionSteps()
    {
        string classifier = Path.Combine(folder, "model000300.pt");
        File.Copy(ClassifierPath, classifier);
        var manifest = new CheckpointManifest
        {
            Classifier = TinyClassifier,
            Diffusion = new DiffusionConfig { DiffusionSteps = 100 },
        };
        File.WriteAllText(CheckpointManifest.PathFor(classifier), JsonSerializer.Serialize(manifest, CheckpointManifest.JsonOptions));
        var result = CliRunner.InProcess(StripClassifierFlags(Args(Path.Combine(folder, "g"), "--classifier_path", classifier, "--num_samples", "1")));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("100-step", result.Error);
    }

    private static string[] StripClassifierFlags(string[] args)
    {
        var list = args.ToList();
        for (int i = list.Count - 2; i >= 1; i--)
            if (list[i].StartsWith("--classifier_", StringComparison.Ordinal) && list[i] is not ("--classifier_path" or "--classifier_scale"))
                list.RemoveRange(i, 2);
        return list.ToArray();
    }

    [Fact]
    public void ClassifierSample_RejectsClassIdBeyondClassifier_AndWrongLearnSigma()
    {
        Assert.Equal(2, Program.BuildRoot().Parse(Args(Path.Combine(folder, "d"), "--class_id", "5")).Invoke());
        Assert.Equal(2, Program.BuildRoot().Parse(Args(Path.Combine(folder, "e"), "--learn_sigma", "False")).Invoke());
    }

    /// <summary>The job's settings for the tiny models, as <see cref="Args"/> spells them on the command line.</summary>
    private GuidedSamplingOptions Options(string outDir) => new()
    {
        Model = new DiffusionModelSource { Path = UNetPath, Architecture = TinyUNet, Diffusion = new DiffusionConfig { LearnSigma = true, TimestepRespacing = "ddim4" } },
        ClassifierPath = ClassifierPath,
        Classifier = TinyClassifier with { NumClasses = null },
        NumSamples = 5,
        BatchSize = 3,
        UseDdim = true,
        ClassifierScale = 10,
        OutDir = outDir,
    };

    [Fact]
    public void ClassifierSample_FastSolvers_RunReproducibly_IgnoringRespacingWithAWarning()
    {
        foreach (var kind in new[] { SamplerKind.DpmSolverPlusPlus, SamplerKind.UniPC, SamplerKind.DpmSolver })
        {
            string name = kind.ToString();
            GuidedSamplingOptions Solver(string outDir) => Options(outDir) with
            {
                UseDdim = false, Sampler = kind, Solver = new SolverOptions { Steps = 3 }, NumSamples = 2, Seed = 5,
                GuidanceInterval = GuidanceInterval.Parse("100,900"),
            };
            var warnings = new StringWriter();
            var first = new GuidedSamplingJob(Solver(Path.Combine(folder, name + "1")), new RunContext { Warnings = warnings }).Run();
            Assert.Contains("timestep_respacing 'ddim4' is ignored", warnings.ToString());  // the ddim4 of the defaults
            var second = new GuidedSamplingJob(Solver(Path.Combine(folder, name + "2"))).Run();
            var a = NpzReader.Read(first.NpzPath)["arr_0"].Data;
            Assert.Equal(a, NpzReader.Read(second.NpzPath)["arr_0"].Data);
            Assert.True(a.Distinct().Count() > 10, $"{kind}: the samples are images, not a constant");
        }
        // The interval changes the samples: guidance everywhere gives other images.
        GuidedSamplingOptions Strong(string outDir) => Options(outDir) with
        {
            UseDdim = false, Sampler = SamplerKind.UniPC, Solver = new SolverOptions { Steps = 3 }, NumSamples = 2, Seed = 5, ClassifierScale = 1000,
        };
        var everywhere = new GuidedSamplingJob(Strong(Path.Combine(folder, "everywhere"))).Run();
        var late = new GuidedSamplingJob(Strong(Path.Combine(folder, "late")) with { GuidanceInterval = GuidanceInterval.Parse("0,10") }).Run();
        Assert.NotEqual(NpzReader.Read(everywhere.NpzPath)["arr_0"].Data, NpzReader.Read(late.NpzPath)["arr_0"].Data);
    }

    [Theory]
    [InlineData("sampler", "--sampler", "euler")]
    [InlineData("solver_order", "--sampler", "dpm_solver++", "--solver_order", "4")]
    [InlineData("steps", "--sampler", "unipc", "--steps", "0")]
    [InlineData("skip_type", "--sampler", "unipc", "--skip_type", "karras")]
    [InlineData("solver_method", "--sampler", "unipc", "--solver_method", "singlestep")]
    [InlineData("solver_method", "--sampler", "dpm_solver", "--solver_method", "adaptive")]
    [InlineData("unipc_variant", "--sampler", "unipc", "--unipc_variant", "bh3")]
    [InlineData("thresholding", "--sampler", "dpm_solver", "--thresholding", "True")]
    [InlineData("guidance_interval", "--guidance_interval", "800,200")]
    [InlineData("use_ddim", "--sampler", "dpm_solver++")]
    public void ClassifierSample_RejectsBadSolverFlags_InOneLineNamingTheFlag(string flag, params string[] overrides)
    {
        // The defaults above sample with DDIM; only the use_ddim case keeps it (DDIM and a solver at once).
        var flags = flag == "use_ddim" ? overrides : ["--use_ddim", "False", .. overrides];
        var result = CliRunner.InProcess(Args(Path.Combine(folder, "bad-" + flag), flags));
        Assert.Equal(2, result.ExitCode);
        var lines = result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error:", lines[0]);
        Assert.Contains("--" + flag, lines[0]);
        Assert.False(Directory.Exists(Path.Combine(folder, "bad-" + flag)), "refused before any work");
    }
}
