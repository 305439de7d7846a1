using System.CommandLine;
using GuidedDiffusion.Diagnostics;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// <c>guided-diffusion doctor</c>: the CPU, native libraries, thread and allocator settings, and the kernel self-check
/// of the models' unusual layers on this host. Exit code 0 when the self-check passes, 1 when it does not.
/// </summary>
internal static class DoctorCommand
{
    /// <summary>doctor's settings.</summary>
    public sealed record Request
    {
        public bool RawProbe { get; init; } = true;
    }

    /// <summary>doctor's flag, bound to <see cref="Request"/>.</summary>
    public static readonly FlagTable<Request> Table = new();

    static DoctorCommand() =>
        Table.Add("raw_probe", "Also check the native kernels without the channel padding the models use (for bug reports).", r => r.RawProbe, (r, v) => r with { RawProbe = v });

    public static Command Create()
    {
        var command = new Command("doctor", "Print this host's CPU, libtorch/oneDNN/MKL versions and ISAs, thread and allocator settings, and check the native kernels of the models' unusual layers against float64.");
        var flags = Table.AddTo(command, new Request());
        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var request = flags.Bind(parse);
            if (Environment.GetEnvironmentVariable(HostReport.ChildVariable) == "1")
            {
                HostReport.RunChild(CliConsole.Out);
                return 0;
            }
            // The oneDNN trace runs this same command again in a child with ONEDNN_VERBOSE=1 (read once, at load).
            var self = Environment.GetCommandLineArgs()[0];
            (string, string[]) child = self.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)
                ? (Environment.ProcessPath ?? "dotnet", [self, "doctor"])
                : (Environment.ProcessPath ?? self, ["doctor"]);
            return HostReport.Write(CliConsole.Out, child, request.RawProbe) ? 0 : 1;
        }));
        return command;
    }
}
