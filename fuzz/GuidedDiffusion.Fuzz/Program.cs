using SharpFuzz;

namespace GuidedDiffusion.Fuzz;

/// <summary>
/// <c>guided-diffusion-fuzz TARGET</c> runs one <see cref="FuzzTargets"/> entry under afl-fuzz (SharpFuzz's
/// persistent out-of-process mode); <c>guided-diffusion-fuzz TARGET FILE...</c> replays files once each.
/// See docs/FUZZING.md.
/// </summary>
public static class Program
{
    /// <summary>Entry point.</summary>
    public static int Main(string[] args)
    {
        if (args is ["--write-seeds", var seedRoot])
        {
            Seeds.Write(seedRoot);
            return 0;
        }
        if (args.Length == 0 || !FuzzTargets.Names.Contains(args[0]))
        {
            Console.Error.WriteLine($"usage: guided-diffusion-fuzz TARGET [FILE...] | --write-seeds DIR; targets: {string.Join(", ", FuzzTargets.Names)}");
            return 2;
        }
        var target = args[0];
        // Path-based parsers get a private scratch folder (in memory when /dev/shm exists).
        var root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        var scratch = Directory.CreateDirectory(Path.Combine(root, $"gd-fuzz-{target}-{Environment.ProcessId}")).FullName;
        try
        {
            if (args.Length > 1)
            {
                foreach (var file in args.Skip(1)) FuzzTargets.Run(target, File.ReadAllBytes(file), scratch);
                return 0;
            }
            Fuzzer.OutOfProcess.Run(stream =>
            {
                using var copy = new MemoryStream();
                stream.CopyTo(copy);
                FuzzTargets.Run(target, copy.ToArray(), scratch);
            });
            return 0;
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }
}
