using System.Diagnostics;

namespace GuidedDiffusion.Tests.Distributed;

/// <summary>Runs the MPI test host (tests/GuidedDiffusion.MpiHost) under <c>mpiexec</c>.</summary>
public static class MpiLauncher
{
    public const string SkipReason =
        "mpiexec is not on PATH: install Open MPI (`apt-get install openmpi-bin`) to run the 2-rank MPI tests.";

    public static string? MpiexecPath { get; } = FindOnPath("mpiexec");

    public sealed record Result(int ExitCode, string StandardOutput, string StandardError, TimeSpan Elapsed, bool TimedOut);

    public static Result Run(string scenario, int ranks, TimeSpan timeout) =>
        RunDll("GuidedDiffusion.MpiHost.dll", new[] { scenario }, ranks, timeout);

    /// <summary>Runs <c>mpiexec -n ranks dotnet dll args...</c> for a dll built next to the tests.</summary>
    public static Result RunDll(string dll, IEnumerable<string> arguments, int ranks, TimeSpan timeout)
    {
        var mpiexec = MpiexecPath ?? throw new InvalidOperationException(SkipReason);
        var host = Path.Combine(AppContext.BaseDirectory, dll);
        if (!File.Exists(host))
        {
            throw new FileNotFoundException($"{dll} was not built next to the tests: {host}", host);
        }
        var start = new ProcessStartInfo(mpiexec)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // Root in containers and CI needs --allow-run-as-root; --oversubscribe lets 2 ranks start on a 1-core runner.
        foreach (var argument in new[] { "-n", ranks.ToString(), "--allow-run-as-root", "--oversubscribe", DotnetPath(), host }.Concat(arguments))
        {
            start.ArgumentList.Add(argument);
        }
        var stopwatch = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {mpiexec}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        var exited = process.WaitForExit(timeout);
        if (!exited)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
        stopwatch.Stop();
        return new Result(exited ? process.ExitCode : -1, output.Result, error.Result, stopwatch.Elapsed, !exited);
    }

    /// <summary>The dotnet muxer running these tests (the CLI exports it), else the one on PATH.</summary>
    private static string DotnetPath() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)
            ? host
            : FindOnPath("dotnet") ?? "dotnet";

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists);
}

/// <summary>A fact that is skipped, with the reason shown, where Open MPI is not installed.</summary>
public sealed class MpiFactAttribute : FactAttribute
{
    public MpiFactAttribute()
    {
        if (MpiLauncher.MpiexecPath is null)
        {
            Skip = MpiLauncher.SkipReason;
        }
    }
}
