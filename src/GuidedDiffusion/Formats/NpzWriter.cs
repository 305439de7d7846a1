using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace GuidedDiffusion.Formats;

/// <summary>
/// Writes NumPy <c>.npz</c> files the way <c>np.savez(path, a, b, ...)</c> does: an uncompressed zip holding
/// <c>arr_0.npy</c>, <c>arr_1.npy</c>, ... in NPY format 1.0 (little-endian, C order). Only the dtypes the sampler
/// writes are supported: uint8 and int64. Array data can come from a file, so arrays larger than .NET's 2 GB
/// array limit (10000 samples at 512²) stream through.
/// </summary>
public static class NpzWriter
{
    /// <summary>An array to store: its NumPy dtype descriptor, shape and raw little-endian C-order bytes.</summary>
    /// <param name="Descr">NumPy dtype string, e.g. <c>|u1</c> or <c>&lt;i8</c>.</param>
    /// <param name="Shape">The array's shape.</param>
    /// <param name="ByteLength">Number of data bytes (product(shape)·itemsize).</param>
    /// <param name="WriteData">Writes exactly <paramref name="ByteLength"/> bytes to the stream.</param>
    public sealed record NpyArray(string Descr, long[] Shape, long ByteLength, Action<Stream> WriteData);

    /// <summary>A uint8 array.</summary>
    /// <param name="data">Values in C order.</param>
    /// <param name="shape">Shape; the product must equal the length of <paramref name="data"/>.</param>
    public static NpyArray UInt8(byte[] data, params long[] shape) =>
        Checked(new NpyArray("|u1", shape, data.LongLength, s => s.Write(data)), 1);

    /// <summary>A uint8 array whose C-order bytes are the whole content of <paramref name="rawFile"/>.</summary>
    /// <param name="rawFile">A file of product(shape) bytes.</param>
    /// <param name="shape">Shape.</param>
    public static NpyArray UInt8File(string rawFile, params long[] shape) =>
        Checked(new NpyArray("|u1", shape, new FileInfo(rawFile).Length, s =>
        {
            using var source = File.OpenRead(rawFile);
            source.CopyTo(s);
        }), 1);

    /// <summary>An int64 array.</summary>
    /// <param name="data">Values in C order.</param>
    /// <param name="shape">Shape; the product must equal the length of <paramref name="data"/>.</param>
    public static NpyArray Int64(long[] data, params long[] shape)
    {
        var bytes = new byte[data.Length * sizeof(long)];
        for (int i = 0; i < data.Length; i++)
            BitConverter.TryWriteBytes(bytes.AsSpan(i * sizeof(long)), BitConverter.IsLittleEndian ? data[i] : System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(data[i]));
        return Checked(new NpyArray("<i8", shape, bytes.LongLength, s => s.Write(bytes)), sizeof(long));
    }

    /// <summary>Writes the NPY 1.0 encoding of one array to <paramref name="stream"/>: magic, the header dict
    /// padded with spaces to a multiple of 64 bytes and ended by a newline, then the data.</summary>
    public static void WriteNpy(Stream stream, NpyArray array)
    {
        string shape = array.Shape.Length == 1
            ? $"({array.Shape[0]},)"
            : "(" + string.Join(", ", array.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + ")";
        string header = $"{{'descr': '{array.Descr}', 'fortran_order': False, 'shape': {shape}, }}";
        const int prefix = 10; // magic (6) + version (2) + header length (2)
        int total = prefix + header.Length + 1;
        int padded = (total + 63) / 64 * 64;
        header = header + new string(' ', padded - total) + "\n";
        if (header.Length > ushort.MaxValue) throw new ArgumentException("array shape too long for an NPY 1.0 header.", nameof(array));
        stream.Write(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 });
        stream.Write(BitConverter.GetBytes((ushort)header.Length));
        stream.Write(Encoding.ASCII.GetBytes(header));
        array.WriteData(stream);
    }

    /// <summary>Writes <paramref name="arrays"/> as <c>arr_0.npy</c>, <c>arr_1.npy</c>, ... into a new
    /// <paramref name="path"/> (replaced if it exists), like <c>np.savez</c> with positional arguments.</summary>
    public static void Write(string path, params NpyArray[] arrays)
    {
        string temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write))
        using (var zip = new ZipArchive(file, ZipArchiveMode.Create))
        {
            for (int i = 0; i < arrays.Length; i++)
            {
                var entry = zip.CreateEntry($"arr_{i}.npy", CompressionLevel.NoCompression);
                using var entryStream = entry.Open();
                WriteNpy(entryStream, arrays[i]);
            }
        }
        File.Move(temp, path, overwrite: true);
    }

    private static NpyArray Checked(NpyArray array, int itemSize)
    {
        long count = array.Shape.Aggregate(1L, (a, b) => a * b);
        if (array.Shape.Any(d => d < 0) || count * itemSize != array.ByteLength)
            throw new ArgumentException($"shape ({string.Join(", ", array.Shape)}) holds {count} items, but {array.ByteLength / itemSize} were given.");
        return array;
    }
}
