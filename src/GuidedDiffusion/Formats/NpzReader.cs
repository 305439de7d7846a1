using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace GuidedDiffusion.Formats;

/// <summary>
/// Reads the NumPy <c>.npz</c> files that <c>classifier-sample</c> (and the original's <c>classifier_sample.py</c>)
/// write: <c>np.savez</c> or <c>np.savez_compressed</c> archives of NPY arrays (format 1.0–3.0, C order). The
/// dtypes a sample file holds are supported: uint8 images and int64/int32 labels. Anything else is refused with
/// a message naming the file and the array.
/// </summary>
public static class NpzReader
{
    /// <summary>One array: its NumPy dtype descriptor, shape and raw little-endian C-order bytes.</summary>
    /// <param name="Descr">NumPy dtype string, e.g. <c>|u1</c> or <c>&lt;i8</c>.</param>
    /// <param name="Shape">The array's shape.</param>
    /// <param name="Data">The data bytes.</param>
    public sealed record NpyData(string Descr, long[] Shape, byte[] Data)
    {
        /// <summary>Number of elements.</summary>
        public long Count => Shape.Aggregate(1L, (a, b) => a * b);
    }

    /// <summary>The arrays of <paramref name="path"/> by name without <c>.npy</c> (<c>arr_0</c>, <c>arr_1</c>, ...).</summary>
    /// <exception cref="InvalidDataException">Not a zip of NPY arrays, or an array this reader does not handle;
    /// the message names the file.</exception>
    public static IReadOnlyDictionary<string, NpyData> Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"'{path}' does not exist.", path);
        var arrays = new Dictionary<string, NpyData>(StringComparer.Ordinal);
        ZipArchive zip;
        try
        {
            zip = ZipFile.OpenRead(path);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}' is not a readable .npz file: {e.Message}", e);
        }
        using (zip)
        {
            foreach (var entry in zip.Entries.Where(e => e.FullName.EndsWith(".npy", StringComparison.Ordinal)))
            {
                var name = entry.FullName[..^4];
                var what = $"'{path}' array {name}";
                try
                {
                    using var stream = entry.Open();
                    arrays[name] = ReadNpy(stream, entry.Length, what);
                }
                catch (InvalidDataException e) when (!e.Message.StartsWith(what, StringComparison.Ordinal))
                {
                    // Damage found by the zip layer (a bad deflate stream, a wrong CRC) carries no file name.
                    throw new InvalidDataException($"{what}: {e.Message}", e);
                }
                catch (Exception e) when (e is NotSupportedException or IOException and not FileNotFoundException)
                {
                    // An unsupported compression method or a damaged local header (the zip layer's other errors).
                    throw new InvalidDataException($"{what}: {e.Message}", e);
                }
            }
        }
        if (arrays.Count == 0) throw new InvalidDataException($"'{path}' holds no .npy arrays.");
        return arrays;
    }

    /// <summary>The largest NPY header read (numpy's default limit is 10,000 bytes).</summary>
    public const int MaxHeaderLength = 1 << 16;

    /// <summary>Reads one NPY array (magic, version, header dict, data) from <paramref name="stream"/>.</summary>
    /// <param name="stream">The stream, positioned at the magic string.</param>
    /// <param name="length">Total bytes of the NPY encoding (header and data).</param>
    /// <param name="what">How to name the array in errors.</param>
    public static NpyData ReadNpy(Stream stream, long length, string what)
    {
        var prefix = ReadExactly(stream, 8, what);
        if (prefix[0] != 0x93 || Encoding.ASCII.GetString(prefix, 1, 5) != "NUMPY")
            throw new InvalidDataException($"{what}: not an NPY array (bad magic string).");
        int major = prefix[6];
        int headerLength = major switch
        {
            1 => BinaryPrimitives.ReadUInt16LittleEndian(ReadExactly(stream, 2, what)),
            2 or 3 => (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(ReadExactly(stream, 4, what)), int.MaxValue),
            _ => throw new InvalidDataException($"{what}: NPY format version {major}.{prefix[7]} is not supported (1.0–3.0 are)."),
        };
        // numpy itself refuses headers above 10,000 bytes by default; a larger claim is damage, not a header to allocate.
        if (headerLength > MaxHeaderLength || (length >= 0 && headerLength > length))
            throw new InvalidDataException($"{what}: the NPY header claims {headerLength} bytes (at most {MaxHeaderLength} are read).");
        var header = Encoding.UTF8.GetString(ReadExactly(stream, headerLength, what));
        var descr = HeaderField(header, "descr", what);
        if (HeaderField(header, "fortran_order", what) != "False")
            throw new InvalidDataException($"{what}: Fortran-order arrays are not supported.");
        var shapeText = HeaderField(header, "shape", what).Trim('(', ')', ' ');
        // Found by fuzzing: a damaged shape ("(2k, 3)", "(-1,)") escaped as FormatException or a negative size.
        var shape = shapeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => long.TryParse(d, NumberStyles.None, CultureInfo.InvariantCulture, out var size) ? size
                : throw new InvalidDataException($"{what}: the NPY shape '({shapeText})' is not a tuple of sizes.")).ToArray();
        int itemSize = descr switch
        {
            "|u1" or "<u1" => 1,
            "<i4" => 4,
            "<i8" => 8,
            _ => throw new InvalidDataException($"{what}: dtype '{descr}' is not supported (uint8 images and int32/int64 labels are)."),
        };
        long dataLength = itemSize;
        foreach (long size in shape)
            if (size != 0 && dataLength > Array.MaxLength / size)
                throw new InvalidDataException($"{what}: shape ({string.Join(", ", shape)}) is too large to read.");
            else dataLength *= size;
        long headerTotal = 8 + (major == 1 ? 2 : 4) + headerLength;
        if (length >= 0 && length - headerTotal != dataLength)
            throw new InvalidDataException($"{what}: shape ({string.Join(", ", shape)}) needs {dataLength} bytes but {length - headerTotal} are stored.");
        return new NpyData(descr, shape, ReadExactly(stream, checked((int)dataLength), what));
    }

    /// <summary>The values of an integer array (int32 or int64) as <see cref="long"/>.</summary>
    public static long[] ToInt64(NpyData array)
    {
        var values = new long[array.Count];
        for (int i = 0; i < values.Length; i++)
            values[i] = array.Descr switch
            {
                "<i8" => BinaryPrimitives.ReadInt64LittleEndian(array.Data.AsSpan(i * 8)),
                "<i4" => BinaryPrimitives.ReadInt32LittleEndian(array.Data.AsSpan(i * 4)),
                "|u1" or "<u1" => array.Data[i],
                _ => throw new InvalidDataException($"dtype '{array.Descr}' is not an integer type."),
            };
        return values;
    }

    private static string HeaderField(string header, string key, string what)
    {
        // The header is a Python dict literal: 'descr': '<i8', 'fortran_order': False, 'shape': (3, 4), }
        var match = Regex.Match(header, $@"['""]{key}['""]\s*:\s*(\([^)]*\)|'[^']*'|""[^""]*""|\w+)");
        if (!match.Success) throw new InvalidDataException($"{what}: the NPY header has no '{key}': {header.Trim()}");
        return match.Groups[1].Value.Trim('\'', '"');
    }

    private static byte[] ReadExactly(Stream stream, int count, string what)
    {
        var buffer = new byte[count];
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"{what}: the array is truncated.");
        }
        return buffer;
    }
}
