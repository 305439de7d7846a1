using System.CommandLine;
using GuidedDiffusion.Cli.Commands;

namespace GuidedDiffusion.Cli;

/// <summary>The <see cref="RunContext"/> a command hands its job: the console, its <c>--device</c>, and its own flag spellings.</summary>
internal static class JobRun
{
    /// <summary>
    /// Lines to stdout, warnings to stderr (<see cref="CliConsole"/>), the device and decoder limit bound from <paramref name="run"/>, and settings in
    /// those lines spelled as the running command's flags (<c>--data_dir</c>; <c>--classifier_channel_mult</c> on classifier-sample).
    /// </summary>
    /// <exception cref="ConfigurationException">An unusable device.</exception>
    public static RunContext For(ParseResult parse, FlagSet<RunFlags.Settings> run)
    {
        var settings = run.Bind(parse);
        return new RunContext
        {
            Output = CliConsole.Out,
            Warnings = CliConsole.Error,
            Device = settings.ComputeOn(),
            MaxImagePixels = settings.MaxImagePixels,
            Spelling = CliErrors.SpellingFor(parse.CommandResult.Command),
        };
    }
}
