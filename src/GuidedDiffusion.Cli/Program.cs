using System.CommandLine;
using GuidedDiffusion.Cli.Commands;

namespace GuidedDiffusion.Cli;

/// <summary>The <c>guided-diffusion</c> command: noise-aware classifier training, evaluation and guided sampling.</summary>
public static class Program
{
    /// <summary>Builds the command tree (exposed for tests).</summary>
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("GuidedDiffusion.NET: train noise-aware classifiers for classifier-guided diffusion (a .NET port of openai/guided-diffusion's classifier_train.py).");
        root.Subcommands.Add(ClassifierTrainCommand.Create());
        root.Subcommands.Add(ClassifyCommand.Create());
        root.Subcommands.Add(ClassifierEvalCommand.Create());
        root.Subcommands.Add(ClassifierSampleCommand.Create());
        root.Subcommands.Add(SampleEvalCommand.Create());
        root.Subcommands.Add(PlotCommand.Create());
        root.Subcommands.Add(ImageTrainCommand.Create());
        root.Subcommands.Add(ImageNllCommand.Create());
        root.Subcommands.Add(EpsEvalCommand.Create());
        root.Subcommands.Add(DoctorCommand.Create());
        return root;
    }

    /// <summary>Entry point.</summary>
    public static int Main(string[] args)
    {
        // Allocator and OpenMP settings must precede libtorch's first allocation and thread pool.
        GuidedDiffusion.Runtime.CpuRuntime.Configure();
        // Before the first BLAS call: MKL's AVX-512 kernels on AMD CPUs that have AVX-512 (GUIDED_DIFFUSION_MKL_DISPATCH=off: not).
        GuidedDiffusion.Runtime.MklCpuDispatch.Enable(GuidedDiffusion.Runtime.CpuFeatures.Current);
        return Run(args);
    }

    /// <summary>
    /// Parses and runs <paramref name="args"/>; an error is one line on <see cref="CliErrors.Error"/> naming each
    /// setting as this command's flag, with exit code 2 (exposed for tests, which run commands in-process).
    /// </summary>
    /// <param name="args">The command line.</param>
    public static int Run(string[] args)
    {
        var parse = BuildRoot().Parse(args);
        CliErrors.UseCommand(parse.CommandResult.Command);
        // Help and System.CommandLine's own lines go where the command's lines go (CliConsole: stdout unless redirected).
        if (parse.Errors.Count == 0) return parse.Invoke(new InvocationConfiguration { Output = CliConsole.Out, Error = CliConsole.Error });
        // One line, not System.CommandLine's default of every error followed by the whole help text.
        var command = string.Join(' ', parse.CommandResult.Command.Name is var name && parse.CommandResult.Command is RootCommand
            ? ["guided-diffusion"] : new[] { "guided-diffusion", name });
        var more = parse.Errors.Count > 1 ? $" (and {parse.Errors.Count - 1} more)" : "";
        var message = Flags.BoolValueError(parse, args) ?? parse.Errors[0].Message;
        CliErrors.Error.WriteLine($"error: {message}{more} See '{command} --help'.");
        return 2;
    }
}
