using System.Diagnostics;
using GuidedDiffusion.Cli;

namespace GuidedDiffusion.Tests.Cli;

/// <summary>
/// Runs guided-diffusion commands: <see cref="InProcess"/> through <see cref="Program.Run"/> (binding, one-line errors,
/// exit codes), <see cref="Run"/> as the executable built next to the tests in a child process (only where the process
/// itself is under test: its stdout, its environment, its exit code as the shell sees it). Tests of what a job does call
/// the job.
/// </summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Output, string Error);

    /// <summary>
    /// Runs a command in this process: its exit code and what it printed (<see cref="CliConsole.Out"/> and
    /// <see cref="CliConsole.Error"/>, redirected for this flow only).
    /// </summary>
    public static Result InProcess(params string[] args)
    {
        // Synchronized: a training job's loader threads may warn while the main thread logs.
        var output = new StringWriter();
        var error = new StringWriter();
        CliConsole.Out = TextWriter.Synchronized(output);
        CliConsole.Error = TextWriter.Synchronized(error);
        try
        {
            int exitCode = Program.Run(args);
            return new Result(exitCode, output.ToString(), error.ToString());
        }
        finally
        {
            CliConsole.Out = null!;
            CliConsole.Error = null!;
        }
    }

    /// <summary>Runs the executable in a child process.</summary>
    public static Result Run(params string[] args) => RunWith(new Dictionary<string, string>(), args);

    /// <summary>Runs with extra environment variables (e.g. ONEDNN_VERBOSE) set for the child.</summary>
    public static Result RunWith(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo(DotnetPath())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment) start.Environment[name] = value;
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "guided-diffusion.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"guided-diffusion {string.Join(' ', args)} did not finish");
        }
        return new Result(process.ExitCode, output.Result, error.Result);
    }

    private static string DotnetPath() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
}
