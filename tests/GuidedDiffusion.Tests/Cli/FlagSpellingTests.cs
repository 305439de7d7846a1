using System.CommandLine;
using System.Text.RegularExpressions;
using GuidedDiffusion.Cli;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Tests.Support;
using SkiaSharp;

namespace GuidedDiffusion.Tests.Cli;

/// <summary>
/// Every error names the flag as the running command spells it: a classifier's channel_mult is
/// <c>--channel_mult</c> on classifier-train and classify but <c>--classifier_channel_mult</c> on classifier-sample,
/// whose <c>--channel_mult</c> is the diffusion model's. Commands run in-process (<see cref="Program.Run"/>).
/// </summary>
public class FlagSpellingTests
{
    private const string Original = "checkpoints/original";
    private static readonly string Missing = Path.Combine(Path.GetTempPath(), "gd-no-such-" + Guid.NewGuid().ToString("N"));
    private static string Classifier => Reference.PathOf($"{Original}/classifier_train/model000001.pt");
    private static string UNet => Reference.PathOf($"{Original}/image_train/model000002.pt");

    /// <summary>Four 64-pixel images of two classes (a command given good data reaches its later checks).</summary>
    private static readonly Lazy<string> Images = new(() =>
    {
        var dir = TestImages.TempDir();
        foreach (var name in new[] { "cat_0", "cat_1", "dog_0", "dog_1" })
            File.WriteAllBytes(Path.Combine(dir, name + ".png"), TestImages.Png(64, 64, (x, y) => new SKColor((byte)(x * 4), (byte)(y * 4), (byte)name.Length)));
        return dir;
    });

    /// <summary>The flags of the original's classifier file.</summary>
    private static readonly string[] ClassifierFlags =
    [
        "--image_size", "64", "--classifier_width", "64", "--classifier_depth", "0", "--classifier_attention_resolutions", "8",
        "--classifier_use_scale_shift_norm", "False", "--classifier_resblock_updown", "False", "--classifier_pool", "adaptive",
    ];

    /// <summary>The flags of the original's diffusion model file.</summary>
    private static readonly string[] UNetFlags =
    [
        "--image_size", "64", "--num_channels", "32", "--num_res_blocks", "0", "--channel_mult", "1", "--attention_resolutions", "",
        "--num_heads", "1", "--diffusion_steps", "100",
    ];

    /// <summary>An invalid value for each setting (the library's name) that the library refuses after parsing.</summary>
    private static readonly Dictionary<string, string> InvalidValue = new()
    {
        ["image_size"] = "0",
        ["classifier_width"] = "0",
        ["classifier_depth"] = "-1",
        ["classifier_attention_resolutions"] = "16,0",
        ["classifier_pool"] = "max",
        ["classifier_channel_mult"] = "1,x",
        ["classifier_num_head_channels"] = "-3",
        ["classifier_num_classes"] = "-3",
        ["dropout"] = "1.5",
        ["num_channels"] = "0",
        ["num_res_blocks"] = "-1",
        ["num_heads"] = "0",
        ["num_head_channels"] = "-3",
        ["attention_resolutions"] = "16,0",
        ["channel_mult"] = "1,x",
        ["num_classes"] = "0",
        ["diffusion_steps"] = "0",
        ["noise_schedule"] = "quadratic",
        ["model_path"] = Missing + ".pt",
        ["classifier_path"] = Missing + ".pt",
        ["device"] = "tpu",
    };

    /// <summary>What each command needs besides the bad flag to get as far as checking it (a later flag overrides an earlier one).</summary>
    private static string[] Context(string command) => command switch
    {
        "classifier-train" or "image-train" => ["--data_dir", Missing],
        "classify" => ["--model_path", Classifier, .. ClassifierFlags, Directory.GetFiles(Images.Value)[0]],
        "classifier-eval" => ["--model_path", Classifier, .. ClassifierFlags, "--data_dir", Images.Value, "--timesteps", "0", "--num_workers", "0", "--log_dir", Missing],
        "sample-eval" => ["--model_path", Classifier, .. ClassifierFlags, Missing + ".npz"],
        "classifier-sample" =>
        [
            "--model_path", UNet, "--classifier_path", Classifier, .. ClassifierFlags, .. UNetFlags,
            "--num_samples", "1", "--batch_size", "1", "--timestep_respacing", "2", "--out_dir", Missing,
        ],
        "image-nll" or "eps-eval" => ["--model_path", UNet, .. UNetFlags, "--num_samples", "1", "--data_dir", Images.Value, "--num_workers", "0", "--log_dir", Missing],
        _ => [],
    };

    private static (int Exit, string Error) Run(params string[] args)
    {
        var result = CliRunner.InProcess(args);
        return (result.ExitCode, result.Error);
    }

    private static IEnumerable<(Command Command, Option Option, IFlag Flag)> TableOptions() =>
        Program.BuildRoot().Subcommands.SelectMany(c => c.Options.Select(o => (c, o, FlagOwners.Of(o))))
            .Where(x => x.Item3 is not null).Select(x => (x.c, x.o, x.Item3!));

    /// <summary>The failure is one "error:" line whose first flag is <paramref name="flag"/>; otherwise a description of what is wrong.</summary>
    private static string? Check(string what, (int Exit, string Error) run, string flag)
    {
        var lines = run.Error.Trim().Split('\n');
        var first = Regex.Match(run.Error, "--[a-z0-9_]+").Value;
        if (run.Exit == 2 && lines.Length == 1 && lines[0].StartsWith("error: ", StringComparison.Ordinal) && first == flag
            && !run.Error.Contains("   at ", StringComparison.Ordinal))
            return null;
        return $"{what}: exit {run.Exit}, expected 2 and one line naming {flag} first: {run.Error.Trim()}";
    }

    [Fact]
    public void EveryNumberAndBooleanFlag_OfEveryCommand_IsNamedAsThatCommandSpellsIt()
    {
        var failures = new List<string>();
        int checkedCount = 0;
        foreach (var (command, option, _) in TableOptions())
        {
            var type = Nullable.GetUnderlyingType(option.ValueType) ?? option.ValueType;
            string? bad = type == typeof(bool) ? "maybe" : type == typeof(int) || type == typeof(long) || type == typeof(double) || type == typeof(float) ? "x" : null;
            // A word after a bare boolean flag of a command with arguments (classify's images) is one of those arguments.
            if (bad is null || type == typeof(bool) && command.Arguments.Count > 0) continue;
            checkedCount++;
            if (Check($"{command.Name} {option.Name} {bad}", Run(command.Name, option.Name, bad), option.Name) is { } failure) failures.Add(failure);
        }
        Assert.True(checkedCount > 100, $"only {checkedCount} flags checked");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void EveryModelAndCheckpointSetting_OfEveryCommand_IsNamedAsThatCommandSpellsIt()
    {
        var failures = new List<string>();
        var seen = new HashSet<(string, string)>();
        foreach (var (command, option, flag) in TableOptions())
        {
            if (!InvalidValue.TryGetValue(flag.Setting, out var bad)) continue;
            seen.Add((command.Name, flag.Setting));
            var run = Run([command.Name, .. Context(command.Name), option.Name, bad]);
            if (Check($"{command.Name} {option.Name} {bad}", run, option.Name) is { } failure) failures.Add(failure);
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        // The renamed classifier settings were reached on both kinds of command.
        foreach (var expected in new[] { ("classifier-sample", "classifier_channel_mult"), ("classify", "classifier_channel_mult"),
                     ("classifier-sample", "classifier_num_classes"), ("classifier-train", "classifier_num_head_channels"), ("classifier-sample", "channel_mult") })
            Assert.Contains(expected, seen);
    }

    [Fact]
    public void RenamedClassifierFlag_IsNamedOnce_AsTyped()
    {
        var run = Run("classifier-sample", "--classifier_channel_mult", "1,x");
        Assert.Equal("error: --classifier_channel_mult '1,x': 'x' is not a number.", run.Error.Trim());
        Assert.Equal(2, run.Exit);
    }
}
