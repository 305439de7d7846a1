using GuidedDiffusion.Bench;

// Benchmarks of GuidedDiffusion.NET. Each subcommand lives in its own file.
var command = args.Length > 0 ? args[0] : "";
var rest = args.Skip(1).ToArray();
switch (command)
{
    case "loader":
        return LoaderBenchmark.Run(rest);
    default:
        Console.Error.WriteLine("usage: GuidedDiffusion.Bench <benchmark> [options]");
        Console.Error.WriteLine("  loader [--images N] [--dir PATH] [--batch B] [--batches K]   data loader throughput");
        return 2;
}
