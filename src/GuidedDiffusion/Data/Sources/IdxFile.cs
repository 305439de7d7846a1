using System.IO.Compression;

namespace GuidedDiffusion.Data.Sources;

/// <summary>
/// An IDX file (the MNIST / Fashion-MNIST format): big-endian magic <c>0x0000 08 NN</c> (unsigned bytes,
/// NN dimensions), NN big-endian int32 sizes, then the data. Plain or gzip-compressed.
/// </summary>
public sealed class IdxFile
{
    private IdxFile(int[] shape, byte[] data)
    {
        Shape = shape;
        Data = data;
    }

    /// <summary>Dimensions, outermost first (e.g. [10000, 28, 28]).</summary>
    public IReadOnlyList<int> Shape { get; }

    /// <summary>The unsigned bytes, C order.</summary>
    public byte[] Data { get; }

    /// <summary>Reads <paramref name="path"/>; gzip is recognised by its magic bytes.</summary>
    /// <exception cref="DatasetException">Not an unsigned-byte IDX file, or truncated.</exception>
    public static IdxFile Read(string path)
    {
        byte[] raw = File.ReadAllBytes(path);
        if (raw.Length >= 2 && raw[0] == 0x1f && raw[1] == 0x8b)
        {
            try
            {
                using var gzip = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
                using var plain = new MemoryStream();
                gzip.CopyTo(plain);
                raw = plain.ToArray();
            }
            catch (InvalidDataException e)
            {
                throw new DatasetException($"IDX file '{path}' is not valid gzip: {e.Message}", e);
            }
        }
        if (raw.Length < 4 || raw[0] != 0 || raw[1] != 0)
            throw new DatasetException($"'{path}' is not an IDX file (bad magic number).");
        if (raw[2] != 0x08)
            throw new DatasetException($"IDX file '{path}' holds element type 0x{raw[2]:x2}; only unsigned bytes (0x08) are supported.");
        int rank = raw[3];
        if (rank < 1 || raw.Length < 4 + 4 * rank)
            throw new DatasetException($"IDX file '{path}' has a truncated header ({rank} dimensions, {raw.Length} bytes).");
        var shape = new int[rank];
        long count = 1;
        for (int d = 0; d < rank; d++)
        {
            int o = 4 + 4 * d;
            shape[d] = (raw[o] << 24) | (raw[o + 1] << 16) | (raw[o + 2] << 8) | raw[o + 3];
            // Sizes are unsigned 32-bit in the format; one above int.MaxValue reads as negative here (found by
            // fuzzing: two negative sizes multiplied to the data length and the file was accepted).
            if (shape[d] < 0 || count * shape[d] > raw.Length)
                throw new DatasetException($"IDX file '{path}' has dimension {d} of size {(uint)shape[d]}, more than its {raw.Length} bytes can hold.");
            count *= shape[d];
        }
        int offset = 4 + 4 * rank;
        if (raw.Length - offset != count)
            throw new DatasetException($"IDX file '{path}' should hold {count} bytes of data for shape [{string.Join(", ", shape)}] but holds {raw.Length - offset}.");
        return new IdxFile(shape, raw[offset..]);
    }
}
