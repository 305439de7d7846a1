using GuidedDiffusion.Formats;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Models;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Fuzz;

/// <summary>
/// One entry point per parser of untrusted files. Each takes the raw bytes, parses them as the program does, and
/// lets only the parser's documented "bad file" exception through as a normal outcome; any other exception, a
/// broken post-condition, a hang or a native crash is a finding. Shared by the fuzzer (Program.cs) and the
/// default test suite, which replays every corpus and crash file through these.
/// </summary>
public static class FuzzTargets
{
    /// <summary>Target names, as given to the fuzzer and used as corpus folder names.</summary>
    public static IReadOnlyList<string> Names { get; } = ["image", "idx", "npz", "safetensors", "pt", "sidecar"];

    /// <summary>The decompression-bomb limit while fuzzing: small, so a mutated header cannot exhaust memory.</summary>
    public const long FuzzMaxImagePixels = 1 << 20;

    /// <summary>Runs target <paramref name="name"/> on <paramref name="data"/>; <paramref name="scratch"/> is a folder for path-based parsers.</summary>
    public static void Run(string name, byte[] data, string scratch)
    {
        switch (name)
        {
            case "image": Image(data); break;
            case "idx": FromFile(data, scratch, "input.idx", Idx); break;
            case "npz": FromFile(data, scratch, "input.npz", Npz); break;
            case "safetensors": FromFile(data, scratch, "input.safetensors", StateDict); break;
            case "pt": FromFile(data, scratch, "input.pt", StateDict); break;
            case "sidecar": FromFile(data, scratch, "model000000.json", Sidecar); break;
            default: throw new ArgumentOutOfRangeException(nameof(name), name, $"targets: {string.Join(", ", Names)}");
        }
    }

    private static void FromFile(byte[] data, string scratch, string fileName, Action<string> parse)
    {
        var path = Path.Combine(scratch, fileName);
        File.WriteAllBytes(path, data);
        parse(path);
    }

    private static void Image(byte[] data)
    {
        try
        {
            var image = ImageDecoder.Decode(data, "fuzz", FuzzMaxImagePixels);
            Check(image.Pixels.Length == image.Width * image.Height * 3, "RGB buffer size");
        }
        catch (ImageDecodeException)
        {
        }
    }

    private static void Idx(string path)
    {
        try
        {
            var idx = IdxFile.Read(path);
            Check(idx.Shape.All(d => d >= 0), "negative IDX dimension");
            Check(idx.Shape.Aggregate(1L, (a, d) => a * d) == idx.Data.Length, "IDX data length");
        }
        catch (DatasetException)
        {
        }
    }

    private static void Npz(string path)
    {
        try
        {
            foreach (var array in NpzReader.Read(path).Values)
                Check(array.Shape.All(d => d >= 0), "negative NPY dimension");
        }
        catch (InvalidDataException)
        {
        }
    }

    private static void StateDict(string path)
    {
        try
        {
            var tensors = StateDictIO.Read(path);
            foreach (var t in tensors.Values) t.Dispose();
        }
        catch (CheckpointException)
        {
        }
    }

    private static void Sidecar(string path)
    {
        try
        {
            CheckpointManifest.Read(path);
        }
        catch (CheckpointException)
        {
        }
    }

    private static void Check(bool condition, string what)
    {
        if (!condition) throw new InvalidOperationException($"fuzz post-condition broken: {what}");
    }
}
