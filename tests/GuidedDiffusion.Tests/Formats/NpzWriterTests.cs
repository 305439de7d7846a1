using System.IO.Compression;
using System.Text;
using GuidedDiffusion.Formats;

namespace GuidedDiffusion.Tests.Formats;

/// <summary>The .npz writer produces what np.savez writes: a stored zip of arr_N.npy files in NPY 1.0 format.</summary>
public class NpzWriterTests
{
    [Fact]
    public void Write_ProducesNpySavezLayout_WithUInt8AndInt64Arrays()
    {
        string path = Path.Combine(Path.GetTempPath(), $"npz-{Guid.NewGuid():N}.npz");
        try
        {
            var pixels = Enumerable.Range(0, 2 * 2 * 3 * 3).Select(i => (byte)(i * 7)).ToArray();
            NpzWriter.Write(path, NpzWriter.UInt8(pixels, 2, 2, 3, 3), NpzWriter.Int64(new long[] { 4, -1 }, 2));
            var arrays = NpzReader.Read(path);
            Assert.Equal(new[] { "arr_0", "arr_1" }, arrays.Keys.OrderBy(k => k, StringComparer.Ordinal));
            Assert.Equal("|u1", arrays["arr_0"].Descr);
            Assert.Equal(new long[] { 2, 2, 3, 3 }, arrays["arr_0"].Shape);
            Assert.Equal(pixels, arrays["arr_0"].Data);
            Assert.Equal("<i8", arrays["arr_1"].Descr);
            Assert.Equal(new long[] { 2 }, arrays["arr_1"].Shape);
            Assert.Equal(new long[] { 4, -1 }, NpzReader.ToInt64(arrays["arr_1"]));
            using var zip = ZipFile.OpenRead(path);
            Assert.All(zip.Entries, e => Assert.Equal(e.Length, e.CompressedLength)); // stored, like np.savez
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void NpyHeader_IsPaddedTo64Bytes_AndWritesOneDimensionalShapesWithTrailingComma()
    {
        using var stream = new MemoryStream();
        NpzWriter.WriteNpy(stream, NpzWriter.Int64(new long[] { 1, 2, 3 }, 3));
        var bytes = stream.ToArray();
        Assert.Equal(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 }, bytes[..8]);
        int headerLength = BitConverter.ToUInt16(bytes, 8);
        Assert.Equal(0, (10 + headerLength) % 64);
        string header = Encoding.ASCII.GetString(bytes, 10, headerLength);
        Assert.StartsWith("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", header);
        Assert.EndsWith("\n", header);
        Assert.Equal(10 + headerLength + 24, bytes.Length);
    }

    [Fact]
    public void Write_RejectsShapeThatDoesNotMatchData()
    {
        Assert.Throws<ArgumentException>(() => NpzWriter.UInt8(new byte[5], 2, 3));
    }
}
