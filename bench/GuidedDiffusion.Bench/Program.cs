using GuidedDiffusion.Bench;

// Each benchmark is one case; run with no arguments for the list.
switch (args.FirstOrDefault())
{
    case "allreduce":
        return AllReduceBenchmark.Run(args[1..]);
    default:
        Console.Error.WriteLine("usage: GuidedDiffusion.Bench <benchmark> [options]");
        Console.Error.WriteLine("  allreduce   gradient all-reduce over MPI: mpiexec -n 2 dotnet GuidedDiffusion.Bench.dll allreduce [--iterations N] [--layout state_dict_manifest.json]");
        return 2;
}
