using System.IO.Compression;
using System.Text;
using GuidedDiffusion.Formats;

namespace GuidedDiffusion.Tests.Formats;

/// <summary>
/// The .npz reader takes what numpy writes for sample files: np.savez (stored) and np.savez_compressed (deflate)
/// archives, NPY 1.0 and 2.0 headers, uint8 images and int32/int64 labels; anything else is refused by name.
/// </summary>
public sealed class NpzReaderTests : IDisposable
{
    private readonly string path = Path.Combine(Path.GetTempPath(), $"npz-reader-{Guid.NewGuid():N}.npz");

    public void Dispose() => File.Delete(path);

    /// <summary>An NPY encoding as numpy writes it: magic, version, header length, dict padded to 64 bytes, data.</summary>
    private static byte[] Npy(string descr, string shape, byte[] data, int major = 1)
    {
        string dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        int prefix = major == 1 ? 10 : 12;
        int padded = (prefix + dict.Length + 1 + 63) / 64 * 64;
        string header = dict + new string(' ', padded - prefix - dict.Length - 1) + "\n";
        using var stream = new MemoryStream();
        stream.Write(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)major, 0 });
        stream.Write(major == 1 ? BitConverter.GetBytes((ushort)header.Length) : BitConverter.GetBytes((uint)header.Length));
        stream.Write(Encoding.ASCII.GetBytes(header));
        stream.Write(data);
        return stream.ToArray();
    }

    private void Zip(CompressionLevel level, params (string Name, byte[] Content)[] entries)
    {
        using var file = File.Create(path);
        using var zip = new ZipArchive(file, ZipArchiveMode.Create);
        foreach (var (name, content) in entries)
        {
            using var stream = zip.CreateEntry(name, level).Open();
            stream.Write(content);
        }
    }

    [Fact]
    public void Read_CompressedArchive_Version2Header_Int32Labels()
    {
        var pixels = Enumerable.Range(0, 2 * 4 * 4 * 3).Select(i => (byte)(i * 5)).ToArray();
        var labels = new byte[8];
        BitConverter.TryWriteBytes(labels.AsSpan(0), 7);
        BitConverter.TryWriteBytes(labels.AsSpan(4), -2);
        Zip(CompressionLevel.Optimal, ("arr_0.npy", Npy("|u1", "(2, 4, 4, 3)", pixels, major: 2)), ("arr_1.npy", Npy("<i4", "(2,)", labels)));

        var arrays = NpzReader.Read(path);
        Assert.Equal(new long[] { 2, 4, 4, 3 }, arrays["arr_0"].Shape);
        Assert.Equal(pixels, arrays["arr_0"].Data);
        Assert.Equal(new long[] { 7, -2 }, NpzReader.ToInt64(arrays["arr_1"]));
    }

    [Fact]
    public void Read_RefusesOtherDtypesFortranOrderAndTruncatedData_NamingTheFileAndArray()
    {
        Zip(CompressionLevel.NoCompression, ("arr_0.npy", Npy("<f4", "(2,)", new byte[8])));
        var e = Assert.Throws<InvalidDataException>(() => NpzReader.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("arr_0", e.Message);
        Assert.Contains("'<f4'", e.Message);

        Zip(CompressionLevel.NoCompression, ("arr_0.npy", Npy("|u1", "(3,)", new byte[2])));
        Assert.Contains("needs 3 bytes", Assert.Throws<InvalidDataException>(() => NpzReader.Read(path)).Message);

        var fortran = Npy("|u1", "(2,)", new byte[2]);
        var text = Encoding.Latin1.GetString(fortran).Replace("False", "True ", StringComparison.Ordinal);
        Zip(CompressionLevel.NoCompression, ("arr_0.npy", Encoding.Latin1.GetBytes(text)));
        Assert.Contains("Fortran", Assert.Throws<InvalidDataException>(() => NpzReader.Read(path)).Message);
    }

    [Fact]
    public void Read_NotAZip_OrNoArrays_SaysSo()
    {
        File.WriteAllText(path, "hello");
        Assert.Contains("not a readable .npz", Assert.Throws<InvalidDataException>(() => NpzReader.Read(path)).Message);
        Zip(CompressionLevel.NoCompression, ("readme.txt", new byte[] { 1 }));
        Assert.Contains("no .npy arrays", Assert.Throws<InvalidDataException>(() => NpzReader.Read(path)).Message);
        Assert.Throws<FileNotFoundException>(() => NpzReader.Read(path + ".missing"));
    }

    [Theory]
    [InlineData("(2k, 3)")]
    [InlineData("()3,)")]
    [InlineData("(-1, -6)")]
    [InlineData("(4611686018427387904, 4)")]
    public void Read_DamagedShape_IsInvalidData_NamingTheArray(string shape)
    {
        // Found by fuzzing (fuzz/crashes/npz): these escaped as FormatException / OverflowException.
        Zip(CompressionLevel.NoCompression, ("arr_0.npy", Npy("|u1", shape, new byte[6])));
        var e = Assert.Throws<InvalidDataException>(() => NpzReader.Read(path));
        Assert.Contains("arr_0", e.Message);
    }

    [Fact]
    public void Read_HugeHeaderLength_IsRefusedWithoutAllocating()
    {
        var npy = Npy("|u1", "(2,)", new byte[2], major: 2);
        BitConverter.TryWriteBytes(npy.AsSpan(8), uint.MaxValue);
        Zip(CompressionLevel.NoCompression, ("arr_0.npy", npy));
        Assert.Contains("header claims", Assert.Throws<InvalidDataException>(() => NpzReader.Read(path)).Message);
    }
}
