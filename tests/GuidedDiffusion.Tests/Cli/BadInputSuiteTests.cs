using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Checkpoints;
using SkiaSharp;

namespace GuidedDiffusion.Tests.Cli;

/// <summary>Folders and a checkpoint shared by the suite's cases, made once.</summary>
public sealed class BadInputWorkspace
{
    public BadInputWorkspace()
    {
        Root = TestImages.TempDir();
        var good = TestImages.Png(32, 32, (x, y) => new SKColor((byte)(x * 7), (byte)(y * 7), 90));
        Images = Folder("images", ("a_1.png", good), ("a_2.png", good), ("b_1.png", good), ("b_2.png", good));
        File.WriteAllText(Path.Combine(Root, "a-file"), "not a folder");
        Trained = Path.Combine(Root, "trained");
        var run = CliRunner.InProcess([.. BadInputSuiteTests.Train(Images, Trained)]);
        Assert.True(run.ExitCode == 0, run.Error);
    }

    public string Root { get; }
    public string Images { get; }
    /// <summary>A finished one-update run (model000000.pt and its sidecar).</summary>
    public string Trained { get; }

    /// <summary>A folder of good images plus the given files.</summary>
    public string Folder(string name, params (string Name, byte[] Content)[] files)
    {
        var dir = Path.Combine(Root, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        foreach (var (file, content) in files) File.WriteAllBytes(Path.Combine(dir, file), content);
        return dir;
    }

    public string NewDir() => Path.Combine(Root, "run-" + Guid.NewGuid().ToString("N"));
}

/// <summary>
/// The real executable against bad or unusual input, one row per case: arguments → exit code → words the
/// message must contain → never a stack trace or a signal, and a failure is one line starting with "error:".
/// A change that turns a clear error back into a crash fails here. The table runs a child process (a crash or a
/// signal is what the shell would see, and must not take the test host down); the named cases after it test what a
/// run reports and run in-process (<see cref="CliRunner.InProcess"/>).
/// </summary>
public class BadInputSuiteTests(BadInputWorkspace w) : IClassFixture<BadInputWorkspace>
{
    private static readonly byte[] Good = TestImages.Png(32, 32, (x, y) => new SKColor((byte)(x * 5), 40, (byte)(y * 5)));

    /// <summary>A one-update classifier-train run of a tiny model into <paramref name="logDir"/>.</summary>
    public static List<string> Train(string dataDir, string logDir, params string[] extra) =>
    [
        "classifier-train", "--data_dir", dataDir, "--log_dir", logDir, "--image_size", "32", "--channel_mult", "1,2",
        "--classifier_width", "32", "--classifier_depth", "1", "--classifier_attention_resolutions", "16", "--num_head_channels", "32",
        "--batch_size", "4", "--iterations", "1", "--num_workers", "0", "--eval_table", "False", .. extra,
    ];

    private string Missing => Path.Combine(w.Root, "no-such-folder-" + Guid.NewGuid().ToString("N"));

    /// <summary>Case name → (arguments, expected exit code, words expected in stderr, or stdout for exit 0).</summary>
    private (IReadOnlyList<string> Args, int Exit, string[] Words) Case(string name) => name switch
    {
        // Flag values (moved from ClassifierTrainCommandTests / ImageTrainCommandTests): refused before any work.
        "pool" => (["classifier-train", "--data_dir", Missing, "--classifier_pool", "max"], 2, ["allowed"]),
        "negative lr" => (["classifier-train", "--data_dir", Missing, "--lr", "-1"], 2, ["--lr"]),
        "image size without mult" => (["classifier-train", "--data_dir", Missing, "--image_size", "48"], 2, ["--channel_mult"]),
        "channel_mult not a number" => (["classifier-train", "--data_dir", Missing, "--channel_mult", "1,x"], 2, ["--channel_mult '1,x': 'x' is not a number"]),
        "attention resolution 0" => (["image-train", "--data_dir", Missing, "--attention_resolutions", "16,0"], 2, ["--attention_resolutions '16,0': every value must be positive"]),
        "microbatch 0" => (["classifier-train", "--data_dir", Missing, "--microbatch", "0"], 2, ["--microbatch"]),
        "noise schedule" => (["classifier-train", "--data_dir", Missing, "--noise_schedule", "quadratic"], 2, ["linear, cosine"]),
        "respacing" => (["classifier-train", "--data_dir", Missing, "--timestep_respacing", "ddim999"], 2, ["cannot create exactly 1000 steps"]),
        "precision" => (["classifier-train", "--data_dir", Missing, "--precision", "fp8"], 2, ["fp32, fp16, bf16"]),
        "image-train lr" => (["image-train", "--data_dir", Missing, "--lr", "-1"], 2, ["--lr"]),
        "image-train anneal" => (["image-train", "--data_dir", Missing, "--lr_anneal_steps", "-5"], 2, ["--lr_anneal_steps"]),
        "image-train scale growth" => (["image-train", "--data_dir", Missing, "--fp16_scale_growth", "-1"], 2, ["--fp16_scale_growth"]),
        "image-train ema" => (["image-train", "--data_dir", Missing, "--ema_rate", "1.5"], 2, ["--ema_rate"]),
        "image-train sampler" => (["image-train", "--data_dir", Missing, "--schedule_sampler", "fancy"], 2, ["uniform, loss-second-moment"]),
        "image-train image size" => (["image-train", "--data_dir", Missing, "--image_size", "48"], 2, ["--channel_mult"]),
        "missing data folder" => (Train(Missing, w.NewDir()), 2, ["does not exist"]),
        "max_image_pixels 0" => (Train(w.Images, w.NewDir(), "--max_image_pixels", "0"), 2, ["--max_image_pixels"]),

        // Parse errors: one line and a pointer to --help, never the whole help text.
        "bool yes" => (["classifier-train", "--anneal_lr", "yes"], 2, ["--anneal_lr", "True or False", "'yes'", "--help"]),
        "bool maybe" => (["classifier-train", "--anneal-lr", "maybe"], 2, ["--anneal_lr", "'maybe'"]),
        "not a number" => (["classifier-train", "--iterations", "x"], 2, ["--iterations", "an integer", "'x'", "--help"]),
        "unknown flag" => (["classifier-train", "--bogus", "3"], 2, ["--bogus", "--help"]),
        "no command" => (["--frobnicate"], 2, ["--help"]),

        // Data.
        "data_dir is a file" => (Train(Path.Combine(w.Root, "a-file"), w.NewDir()), 2, ["a-file", "is a file, not a folder"]),
        "empty image" => (Train(w.Folder("zero", ("a_1.png", Good), ("a_2.png", Good), ("b_1.png", Good), ("b_2.png", [])), w.NewDir()), 2, ["b_2.png", "empty"]),
        "text as png" => (Train(w.Folder("text", ("a_1.png", Good), ("a_2.png", Good), ("b_1.png", Good), ("b_2.png", "this is not an image\n"u8.ToArray())), w.NewDir()), 2, ["b_2.png", "not a recognised"]),
        "truncated png" => (Train(w.Folder("trunc", ("a_1.png", Good), ("a_2.png", Good), ("b_1.png", Good), ("b_2.png", Good[..(Good.Length / 2)])), w.NewDir()), 2, ["b_2.png", "truncated"]),
        "decompression bomb" => (Train(w.Folder("bomb", ("a_1.png", Good), ("a_2.png", Good), ("b_1.png", Good), ("b_2.png", HostileInputTests.BombPng(100_000))), w.NewDir()), 2, ["b_2.png", "100000×100000", "decompression bomb"]),
        // b_3: the skipped bomb is left out at start-up and four readable images must remain for one batch.
        "bomb skipped" => (Train(w.Folder("bombskip", ("a_1.png", Good), ("a_2.png", Good), ("b_1.png", Good), ("b_3.png", Good), ("b_2.png", HostileInputTests.BombPng(100_000))), w.NewDir(), "--skip_bad_images", "True"), 0, ["Done: 1 updates"]),

        // Run folders.
        "log_dir is a file" => (Train(w.Images, Path.Combine(w.Root, "a-file")), 2, ["a-file", "is a file"]),
        "log_dir under a file" => (Train(w.Images, Path.Combine(w.Root, "a-file", "run")), 2, ["a-file", "cannot be created"]),
        "log_dir in /proc" => (Train(w.Images, "/proc/gd-suite-" + Guid.NewGuid().ToString("N")), 2, ["/proc/gd-suite-"]),
        "used log_dir" => (Train(w.Images, w.Trained), 2, ["already holds", "--resume_checkpoint auto", "--overwrite True"]),
        "overwrite and auto" => (Train(w.Images, w.Trained, "--overwrite", "True", "--resume_checkpoint", "auto"), 2, ["--overwrite"]),

        // Parity with the original.
        "flag given twice" => (Train(w.Images, w.NewDir(), "--iterations", "2"), 0, ["Done: 2 updates"]),
        "microbatch above batch" => (Train(w.Images, w.NewDir(), "--microbatch", "64"), 0, ["Done: 1 updates"]),
        "unreached attention" => (Train(w.Images, w.NewDir(), "--classifier_attention_resolutions", "16,4"), 0, ["Done: 1 updates"]),

        // Checkpoints.
        "shape mismatch" => (["classify", "--model_path", Bare(), "--image_size", "32", "--channel_mult", "1,2", "--classifier_width", "64",
            "--classifier_depth", "1", "--classifier_attention_resolutions", "16", Path.Combine(w.Images, "a_1.png")], 2,
            ["does not fit the model", "Wrong shapes (", "time_embed.0.weight: model [256, 64], checkpoint [128, 32]", "more"]),

        // --device reaches the sampling and evaluation commands too (ComputeDevice names the allowed values).
        _ when name.StartsWith("device on ", StringComparison.Ordinal) =>
            ([name["device on ".Length..], "--device", "tpu", .. name["device on ".Length..] switch
            {
                "classify" => [Path.Combine(w.Images, "a_1.png")],
                "sample-eval" => [Path.Combine(w.Root, "samples.npz")],
                "eps-eval" or "image-nll" => ["--model_path", Path.Combine(w.Root, "model.pt")],
                _ => Array.Empty<string>(),
            }], 2, ["--device", "unknown device 'tpu'"]),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    /// <summary>The trained model without its sidecar, so the flags alone describe the architecture.</summary>
    private string Bare()
    {
        var bare = Path.Combine(w.NewDir(), "model000000.pt");
        Directory.CreateDirectory(Path.GetDirectoryName(bare)!);
        File.Copy(Path.Combine(w.Trained, "model000000.pt"), bare);
        return bare;
    }

    private static readonly HashSet<string> DecodedDuringTraining = ["empty image", "text as png", "truncated png", "decompression bomb"];

    public static TheoryData<string> Cases() =>
    [
        "pool", "negative lr", "image size without mult", "channel_mult not a number", "attention resolution 0", "microbatch 0", "noise schedule", "respacing", "precision",
        "image-train lr", "image-train anneal", "image-train scale growth", "image-train ema", "image-train sampler", "image-train image size",
        "missing data folder", "max_image_pixels 0", "bool yes", "bool maybe", "not a number", "unknown flag", "no command",
        "data_dir is a file", "empty image", "text as png", "truncated png", "decompression bomb", "bomb skipped",
        "log_dir is a file", "log_dir under a file", "log_dir in /proc", "used log_dir", "overwrite and auto",
        "flag given twice", "microbatch above batch", "unreached attention", "shape mismatch",
        "device on classifier-sample", "device on classifier-eval", "device on classify", "device on sample-eval", "device on eps-eval",
        "device on image-nll",
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Input_GivesItsExitCodeAndWords_NeverAStackTraceOrSignal(string name)
    {
        var (args, exit, words) = Case(name);
        var run = CliRunner.Run([.. args]);
        var all = run.Output + run.Error;
        Assert.True(run.ExitCode < 128, $"{name}: killed by signal {run.ExitCode - 128}\n{all}");
        Assert.DoesNotContain("Unhandled exception", all);
        Assert.DoesNotMatch(@"(?m)^\s+at \S+\(", all);
        Assert.True(exit == run.ExitCode, $"{name}: exit {run.ExitCode}, expected {exit}\n{all}");
        if (exit != 0)
        {
            Assert.StartsWith("error:", run.Error.TrimStart());
            Assert.Single(run.Error.Trim().Split('\n'));
            Assert.DoesNotContain("Usage:", all);
            // Flags and run folders fail before the model is built; a bad image only shows when it is decoded.
            if (!DecodedDuringTraining.Contains(name)) Assert.DoesNotContain("creating model", run.Output);
        }
        foreach (var word in words)
            Assert.Contains(word, exit == 0 ? run.Output : run.Error);
    }

    [Fact]
    public void BombSkipped_IsNamedOnce_InStderrLogAndTheRunFolderList()
    {
        // A fifth image: the bomb is left out at start-up, and four readable images must remain to fill a batch.
        var dir = w.Folder("named", ("a_1.png", Good), ("a_2.png", Good), ("b_1.png", Good), ("b_3.png", Good), ("b_2.png", HostileInputTests.BombPng(100_000)));
        var log = w.NewDir();
        var run = CliRunner.InProcess([.. Train(dir, log, "--skip_bad_images", "True", "--iterations", "3")]);
        Assert.Equal(0, run.ExitCode);
        var bomb = Path.Combine(dir, "b_2.png");
        Assert.Single(run.Error.Split('\n'), l => l.Contains(bomb) && l.Contains("decompression bomb"));
        Assert.Single(File.ReadAllLines(Path.Combine(log, "log.txt")), l => l.Contains(bomb) && l.Contains("skipped"));
        var listed = Assert.Single(File.ReadAllLines(Path.Combine(log, "skipped_images.txt")));
        Assert.StartsWith(bomb + "\t", listed);
    }

    [Fact]
    public void SkipBadImages_AClassWithOnlyUnreadableFiles_IsLeftOutOfTheModelAndSidecar_WithOneLineNamingIt()
    {
        var (dir, bad) = UnreadableClassTests.MixedFolder();
        var log = w.NewDir();
        var run = CliRunner.InProcess([.. Train(dir, log, "--label_from", "folder", "--skip_bad_images", "True", "--iterations", "2")]);
        Assert.Equal(0, run.ExitCode);
        var errors = run.Error.Split('\n');
        Assert.Single(errors, l => l.Contains("class 'cat'"));
        foreach (var file in bad)
            Assert.Single(errors, l => l.Contains(file) && l.Contains("skipped"));
        Assert.Equal(bad, File.ReadAllLines(Path.Combine(log, "skipped_images.txt")).Select(l => l.Split('\t')[0]).ToArray());
        var manifest = CheckpointManifest.Read(Path.Combine(log, "model000001.json"));
        Assert.Equal(new[] { "dog", "fox" }, manifest.Classes);
        Assert.Equal(2, manifest.Classifier!.NumClasses);
    }

    [Fact]
    public void FlagGivenTwice_TakesTheLastValue_AndUnreachedAttentionWarnsNamingIt()
    {
        var log = w.NewDir();
        var run = CliRunner.InProcess([.. Train(w.Images, log, "--classifier_attention_resolutions", "16,4", "--iterations", "2", "--iterations", "3")]);
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("Done: 3 updates", run.Output);
        Assert.Single(run.Error.Split('\n'), l => l.StartsWith("warning:", StringComparison.Ordinal) && l.Contains("resolutions 4 is never reached"));
    }
}
