using GuidedDiffusion.Distributed;
using GuidedDiffusion.MpiHost;

// Usage: mpiexec -n 2 dotnet GuidedDiffusion.MpiHost.dll <scenario>
if (args.Length != 1 || !Scenarios.All.TryGetValue(args[0], out var scenario))
{
    Console.Error.WriteLine($"usage: GuidedDiffusion.MpiHost <{string.Join("|", Scenarios.All.Keys)}>");
    return 2;
}

using var communicator = Communicators.Create(Communicators.Mpi);
TorchThreads.Configure(communicator);
var exitCode = Communicators.RunGuarded(communicator, () =>
{
    scenario(communicator);
    Console.WriteLine($"OK {args[0]} rank {communicator.Rank}/{communicator.WorldSize}");
    return 0;
});
return exitCode;
