using System.Text.RegularExpressions;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Cli;

namespace GuidedDiffusion.Tests.Cli;

/// <summary>The library names settings; the CLI spells them as flags.</summary>
public class SettingNamesTests
{
    [Fact]
    public void LibraryMessage_NamesTheSetting_TheCliSpellsItAsAFlag()
    {
        var e = new ConfigurationException("iterations", $"give either {SettingText.Ref("lr_anneal_steps")} or {SettingText.Ref("iterations")}, not both.");
        Assert.Equal("iterations", e.Setting);
        Assert.Equal("iterations: give either lr_anneal_steps or iterations, not both.", e.Message);
        Assert.Equal("--iterations: give either --lr_anneal_steps or --iterations, not both.", CliErrors.Describe(e));

        var missing = new CheckpointException("m.pt", $"{SettingText.Ref("model_path")} 'm.pt' does not exist.");
        Assert.Equal("model_path 'm.pt' does not exist.", missing.Message);
        Assert.Equal("--model_path 'm.pt' does not exist.", CliErrors.Describe(missing));
        // An exception that marks nothing keeps its message.
        Assert.Equal("plain", CliErrors.Describe(new IOException("plain")));
    }

    [Fact]
    public void LogLines_SpellSettingsTheProcesssWay()
    {
        // Bare names unless a front end says otherwise; the CLI's Main sets CliErrors.Flag (--name).
        var line = $"note: with {SettingText.Ref("timestep_respacing")} 100 the classifier sees spaced t";
        Assert.Equal("note: with timestep_respacing 100 the classifier sees spaced t", SettingText.Render(line, name => name));
        Assert.Equal("note: with --timestep_respacing 100 the classifier sees spaced t", SettingText.Render(line, CliErrors.Flag));
    }

    [Fact]
    public void LibrarySource_QuotesNoFlagSpellings()
    {
        // No string literal in the library holds a --flag spelling (messages and log lines mark settings with
        // SettingText.Ref): a quote, then anything but a quote, then --name.
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "GuidedDiffusion.sln"))) dir = dir.Parent;
        var library = Path.Combine(dir!.FullName, "src", "GuidedDiffusion");
        var spelled = Directory.EnumerateFiles(library, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Split(Path.DirectorySeparatorChar).Any(p => p is "obj" or "bin"))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (File: Path.GetFileName(f), Line: i + 1, Text: line)))
            .Where(l => !l.Text.TrimStart().StartsWith("//", StringComparison.Ordinal) && Regex.IsMatch(l.Text, "\"[^\"]*--[a-z]"))
            .Select(l => $"{l.File}:{l.Line}")
            .ToList();
        Assert.True(spelled.Count == 0, "flag spellings in library messages: " + string.Join(", ", spelled));
    }
}
