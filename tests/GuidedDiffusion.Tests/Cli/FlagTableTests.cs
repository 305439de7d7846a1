using System.Collections;
using System.CommandLine;
using System.CommandLine.Help;
using GuidedDiffusion.Cli;
using GuidedDiffusion.Cli.Commands;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Tests.Cli;

/// <summary>
/// The flag tables: every option of every command comes from one, its default is the bound record's, each name
/// is declared once per record, and the demo presets leave typed flags alone.
/// </summary>
public class FlagTableTests
{
    private static IEnumerable<(Command Command, Option Option)> AllOptions() =>
        Program.BuildRoot().Subcommands.SelectMany(c => c.Options.Where(o => o is not HelpOption).Select(o => (c, o)));

    private static bool SameValue(object? a, object? b) =>
        a is IEnumerable x && a is not string && b is IEnumerable y ? x.Cast<object>().SequenceEqual(y.Cast<object>()) : Equals(a, b);

    [Fact]
    public void EveryOption_ComesFromAFlagTable()
    {
        var loose = AllOptions().Where(p => FlagOwners.Of(p.Option) is null).Select(p => $"{p.Command.Name} {p.Option.Name}").ToList();
        Assert.True(loose.Count == 0, "options declared outside a flag table: " + string.Join(", ", loose));
        Assert.True(AllOptions().Count() > 150, "the walk found too few options");
    }

    [Fact]
    public void EveryOption_DefaultsToItsBoundRecordsValue()
    {
        foreach (var command in Program.BuildRoot().Subcommands)
        {
            var parse = command.Parse([]);
            foreach (var option in command.Options.Where(o => o is not HelpOption))
            {
                var flag = FlagOwners.Of(option)!;
                var set = FlagOwners.SetOf(option)!;
                var expected = flag.ValueIn(set.DefaultRecord);
                // What help shows (the option's default) and what an empty command line binds are the record's value.
                Assert.True(SameValue(expected, flag.DefaultOf(option)), $"{command.Name} {option.Name}: help default {flag.DefaultOf(option)}, record {expected}");
                Assert.True(SameValue(expected, flag.ValueIn(set.BindRecord(parse))), $"{command.Name} {option.Name}: binds {flag.ValueIn(set.BindRecord(parse))}, record {expected}");
            }
        }
    }

    [Fact]
    public void NoFlagName_IsDeclaredTwiceForOneRecord()
    {
        // The same name on several commands must be the same table entry, unless it binds a different record's
        // setting (batch_size of training vs. of evaluation): a group re-declared by hand fails here.
        var twice = AllOptions()
            .Where(p => FlagOwners.Of(p.Option) is not null) // loose options fail EveryOption_ComesFromAFlagTable
            .Select(p => (Name: p.Option.Name, Flag: FlagOwners.Of(p.Option)!))
            .GroupBy(p => (p.Name, p.Flag.Record))
            .Where(g => g.Select(p => p.Flag).Distinct().Count() > 1)
            .Select(g => $"{g.Key.Name} ({g.Key.Record.Name})")
            .ToList();
        Assert.True(twice.Count == 0, "declared more than once: " + string.Join(", ", twice));

        // classifier-sample's classifier_channel_mult is the classifier's channel_mult under another name, not a copy.
        var sample = Program.BuildRoot().Subcommands.Single(c => c.Name == "classifier-sample");
        Assert.Same(ClassifierModelFlags.ChannelMult, FlagOwners.Of(sample.Options.Single(o => o.Name == "--classifier_channel_mult")));
        var train = Program.BuildRoot().Subcommands.Single(c => c.Name == "classifier-train");
        Assert.Same(ClassifierModelFlags.ChannelMult, FlagOwners.Of(train.Options.Single(o => o.Name == "--channel_mult")));
    }

    [Fact]
    public void OptionsAreMadeOnlyByTheFlagTables()
    {
        // A source scan backs up the walk: no command creates an option of its own.
        var cli = Path.Combine(RepoRoot(), "src", "GuidedDiffusion.Cli");
        var creators = Directory.EnumerateFiles(cli, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .Where(f => File.ReadAllText(f).Contains("Flags.Create(") || File.ReadAllText(f).Contains("new Option<"))
            .Select(Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal).ToList();
        Assert.Equal(["FlagTable.cs", "Flags.cs"], creators);
    }

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "GuidedDiffusion.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new DirectoryNotFoundException("GuidedDiffusion.sln not found above the test folder");
    }

    private static FlagSet<T> SetOn<T>(Command command) =>
        command.Options.Select(FlagOwners.SetOf).OfType<FlagSet<T>>().First();

    [Fact]
    public void ClassifierDemo_TakesTheDemosValues_OnlyForUntypedFlags()
    {
        var command = new Command("classifier-train");
        var loop = TrainingFlags.AddTo(command, new TrainingConfig(), TrainingFlags.ClassifierTrain);
        var classifier = ClassifierModelFlags.AddTo(command).Classifier;

        var typed = command.Parse(["--iterations", "7", "--log_dir", "mine", "--classifier_width", "32"]);
        var training = loop.WithDemo(typed, loop.Bind(typed), DemoPreset.ClassifierTraining(loop.Defaults));
        var model = classifier.WithDemo(typed, classifier.Bind(typed), DemoPreset.Classifier(classifier.Defaults));
        Assert.Equal((7, 32, "mine", 32, 1), (training.Length.Iterations, training.Data.BatchSize, training.Checkpoints.LogDir, model.Width, model.Depth));
        Assert.False(training.Checkpoints.Overwrite); // a folder the user named is never replaced

        var bare = command.Parse([]);
        training = loop.WithDemo(bare, loop.Bind(bare), DemoPreset.ClassifierTraining(loop.Defaults));
        Assert.Equal((400, DemoPreset.ClassifierRunFolder, true, 10), (training.Length.Iterations, training.Checkpoints.LogDir, training.Checkpoints.Overwrite, training.Validation.EvalInterval));
        Assert.Null(classifier.WithDemo(bare, classifier.Bind(bare), DemoPreset.Classifier(classifier.Defaults)).NumClasses);

        var resumed = command.Parse(["--resume_checkpoint", "auto"]);
        Assert.False(loop.WithDemo(resumed, loop.Bind(resumed), DemoPreset.ClassifierTraining(loop.Defaults)).Checkpoints.Overwrite);
        var strict = command.Parse(["--overwrite", "False"]);
        Assert.False(loop.WithDemo(strict, loop.Bind(strict), DemoPreset.ClassifierTraining(loop.Defaults)).Checkpoints.Overwrite);
    }

    [Fact]
    public void TrainingSections_BindEveryTypedFlag_IntoTheirSection()
    {
        var command = new Command("classifier-train");
        var loop = TrainingFlags.AddTo(command, new TrainingConfig(), TrainingFlags.ClassifierTrain);
        var t = loop.Bind(command.Parse(["--seed", "9", "--batch_size", "3", "--noised", "False", "--iterations", "11", "--lr", "0.5",
            "--save_interval", "7", "--precision", "bf16", "--eval_interval", "2", "--flip_validation", "True", "--fp16_scale_growth", "0.01"]));
        Assert.Equal((9, 3, false, 11, 0.5, 7, TrainingPrecision.Bf16, 2, true, 0.01),
            (t.Seed, t.Data.BatchSize, t.Objective.Noised, t.Length.Iterations, t.Optimizer.Lr, t.Checkpoints.SaveInterval, t.Precision.Mode,
             t.Validation.EvalInterval, t.Validation.FlipValidation, t.Precision.Fp16ScaleGrowth));
    }

    /// <summary>The shared groups' flags, on every command.</summary>
    [Fact]
    public void SharedGroupFlags_AreNeverRedeclared_ByACommand()
    {
        // A group's flag name on any command must be that group's flag: a command that declares --seed by hand fails here.
        var shared = new SharedFlag[] { DataFlags.DataDir, DataFlags.LabelFrom, DataFlags.BatchSize, DataFlags.NumWorkers, DataFlags.SkipBadImages,
            SeedFlags.Seed, OutputFlags.LogDir, NoiseLevelFlags.Timestep, DenoisingFlags.NumSamples, DenoisingFlags.ClipDenoised,
            ModelShapeFlags.ImageSize, ModelShapeFlags.Dropout, TrainingFlags.Length.IterationsFlag }.ToDictionary(f => "--" + f.Name);
        var redeclared = AllOptions()
            .Where(p => shared.ContainsKey(p.Option.Name))
            .Where(p => FlagOwners.Of(p.Option)!.Shared != shared[p.Option.Name])
            .Select(p => $"{p.Command.Name} {p.Option.Name}").ToList();
        Assert.True(redeclared.Count == 0, "declared outside its group: " + string.Join(", ", redeclared));
    }

    [Theory]
    [InlineData("--seed", "7", "classifier-train", "image-train", "classifier-eval", "classifier-sample")]
    [InlineData("--batch_size", "3", "classifier-train", "image-train", "classifier-eval", "sample-eval", "classifier-sample")]
    [InlineData("--label_from", "folder", "classifier-train", "image-train", "classifier-eval")]
    [InlineData("--num_workers", "2", "classifier-train", "image-train", "classifier-eval")]
    [InlineData("--data_dir", "imgs", "classifier-train", "image-train", "classifier-eval")]
    [InlineData("--log_dir", "out", "classifier-train", "image-train", "classifier-eval", "plot")]
    [InlineData("--timestep", "5", "classify", "sample-eval")]
    public void ASharedGroupFlag_BindsIdentically_InEveryCommandThatTakesIt(string flag, string value, params string[] commands)
    {
        var root = Program.BuildRoot();
        var bound = new List<string>();
        foreach (var name in commands)
        {
            var command = root.Subcommands.Single(c => c.Name == name);
            var option = command.Options.Single(o => o.Name == flag);
            var owner = FlagOwners.Of(option)!;
            // The same option: name, alias, value type and spelling, whatever record it binds.
            var kebab = flag.Replace('_', '-');
            Assert.Equal(kebab == flag ? [] : [kebab], option.Aliases);
            Assert.NotNull(owner.Shared);
            var parse = command.Parse([flag, value]);
            // The value bound (a seed is an int for training and sampling, a long for evaluation: the same number).
            bound.Add($"{owner.ValueIn(FlagOwners.SetOf(option)!.BindRecord(parse))}");
        }
        Assert.Single(bound.Distinct());
        Assert.Contains(value == "folder" ? "Folder" : value, bound[0]);
    }

    [Fact]
    public void ImageDemo_KeepsAnAnnealingTheUserAskedFor()
    {
        var command = ImageTrainCommand.Create();
        var length = SetOn<ImageTrainLength>(command);
        foreach (var (args, iterations, anneal) in new[] { (Array.Empty<string>(), 200, false), (["--lr_anneal_steps", "50"], 50, true), (["--iterations", "9"], 9, false) })
        {
            var parse = command.Parse(args);
            var demo = length.WithDemo(parse, length.Bind(parse), DemoPreset.ImageTrainingLength(length.Defaults)).ToLength();
            Assert.Equal((iterations, anneal), (demo.Iterations, demo.AnnealLr));
        }
    }
}
