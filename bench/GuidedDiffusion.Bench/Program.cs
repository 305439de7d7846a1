using GuidedDiffusion.Bench;

// Benchmarks of GuidedDiffusion.NET. Each subcommand lives in its own file; results go in BENCHMARKS.md.
// Allocator and OpenMP settings first, as the CLI does, so the benchmark measures what users get.
GuidedDiffusion.Runtime.CpuRuntime.Configure();
GuidedDiffusion.Runtime.MklCpuDispatch.Enable(GuidedDiffusion.Runtime.CpuFeatures.Current);
var rest = args.Skip(1).ToArray();
switch (args.FirstOrDefault())
{
    case "loader":
        return LoaderBenchmark.Run(rest);
    case "allreduce":
        return AllReduceBenchmark.Run(rest);
    case "train-step":
        return TrainStepBenchmark.Run(rest);
    case "adversarial-step":
        return AdversarialStepBenchmark.Run(rest);
    case "ops":
        return OpsBenchmark.Run(rest);
    default:
        Console.Error.WriteLine("usage: GuidedDiffusion.Bench <benchmark> [options]");
        Console.Error.WriteLine("  loader [--images N] [--dir PATH] [--batch B] [--batches K]   data loader throughput");
        Console.Error.WriteLine("  train-step [classifier flags] [--precision fp32|bf16|fp16|auto] [--allow_slow_bf16] [--use_checkpoint] [--ceilings false] [--breakdown_steps 0] --batch_size 16 --warmup 3 --steps 10 --threads 2");
        Console.Error.WriteLine("  adversarial-step [--attack_steps 7] [--precision fp32|bf16] --batch_size 32 --pairs 6 --threads 2   plain vs adversarial steps, alternating");
        Console.Error.WriteLine("  ops [--threads 2] [--rounds 2]   per-op fp32 vs bf16 rates (conv NCHW/NHWC, matmul, attention einsum/SDPA, GroupNorm)");
        Console.Error.WriteLine("  allreduce   gradient all-reduce over MPI: mpiexec -n 2 dotnet GuidedDiffusion.Bench.dll allreduce [--iterations N] [--layout state_dict_manifest.json]");
        return 2;
}
