using System.IO.Compression;
using System.Text;
using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Sources;
using SkiaSharp;

namespace GuidedDiffusion.Tests.Data;

/// <summary>Small generated images and folders for the Data tests.</summary>
internal static class TestImages
{
    public static byte[] Png(int width, int height, Func<int, int, SKColor> color)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, color(x, y));
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    public static byte[] Jpeg(int width, int height, int quality = 90)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, new SKColor((byte)(x * 7), (byte)(y * 5), (byte)((x + y) * 3)));
        using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, quality);
        return data.ToArray();
    }

    /// <summary>A PNG written by hand, for formats Skia cannot encode (16-bit, gray+alpha).</summary>
    public static byte[] RawPng(int width, int height, int bitDepth, int colorType, byte[] rawRows)
    {
        using var ms = new MemoryStream();
        ms.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        WriteBe(ihdr, 0, width);
        WriteBe(ihdr, 4, height);
        ihdr[8] = (byte)bitDepth;
        ihdr[9] = (byte)colorType;
        Chunk(ms, "IHDR", ihdr);
        using (var z = new MemoryStream())
        {
            using (var zs = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true))
                zs.Write(rawRows);
            Chunk(ms, "IDAT", z.ToArray());
        }
        Chunk(ms, "IEND", []);
        return ms.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        var len = new byte[4];
        WriteBe(len, 0, data.Length);
        s.Write(len);
        var typeAndData = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(typeAndData);
        var crc = new byte[4];
        WriteBe(crc, 0, (int)Crc32(typeAndData));
        s.Write(crc);
    }

    private static void WriteBe(byte[] b, int o, int v)
    {
        b[o] = (byte)(v >> 24); b[o + 1] = (byte)(v >> 16); b[o + 2] = (byte)(v >> 8); b[o + 3] = (byte)v;
    }

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    private static uint Crc32(byte[] data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    private static readonly Lazy<string> TempRoot = new(() =>
    {
        var root = Path.Combine(Path.GetTempPath(), $"gd-data-tests-{Environment.ProcessId}");
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); }
            catch (IOException) { }
        };
        return root;
    });

    /// <summary>A fresh folder, removed when the test process exits.</summary>
    public static string TempDir()
    {
        var dir = Path.Combine(TempRoot.Value, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}

/// <summary>
/// In-memory source whose image i is a constant square with red = i mod 256 and green = i / 256, so a
/// batch reveals which indices it holds and in which order.
/// </summary>
internal sealed class IndexedSource(int count, int side = 8, int classes = 3) : IImageSource
{
    public int Count => count;

    public ClassMap Classes { get; } = new(Enumerable.Range(0, classes).Select(i => $"c{i}"));

    public int LabelOf(int index) => index % classes;

    public string NameOf(int index) => $"mem#{index}";

    public RgbImage Load(int index)
    {
        var image = new RgbImage(side, side);
        for (int p = 0; p < side * side; p++)
        {
            image.Pixels[3 * p] = (byte)(index % 256);
            image.Pixels[3 * p + 1] = (byte)(index / 256);
            // Left half brighter, so a flip is visible.
            image.Pixels[3 * p + 2] = (byte)(p % side < side / 2 ? 200 : 10);
        }
        return image;
    }

    /// <summary>Indices held by a batch of this source, in batch order.</summary>
    public static int[] IndicesOf(GuidedDiffusion.Data.Loading.Batch batch)
    {
        var images = batch.Images.data<float>().ToArray();
        int b = (int)batch.Images.shape[0], plane = (int)(batch.Images.shape[2] * batch.Images.shape[3]);
        return Enumerable.Range(0, b).Select(i =>
        {
            int red = (int)Math.Round((images[i * 3 * plane] + 1) * 127.5);
            int green = (int)Math.Round((images[i * 3 * plane + plane] + 1) * 127.5);
            return red + 256 * green;
        }).ToArray();
    }
}
