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
        return root;
    }

    /// <summary>Entry point.</summary>
    public static int Main(string[] args)
    {
        // Allocator and OpenMP settings must precede libtorch's first allocation and thread pool.
        GuidedDiffusion.Runtime.CpuRuntime.Configure();
        return BuildRoot().Parse(args).Invoke();
    }
}
