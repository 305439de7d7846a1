using GuidedDiffusion.Data.Decoding;
using SkiaSharp;

namespace GuidedDiffusion.Tests.Data;

/// <summary>Formats without a Pillow reference file, checked against what PIL's convert("RGB") gives by definition.</summary>
public class DecodingTests
{
    [Fact]
    public void Png16BitRgb_KeepsHighByte_LikePilRgb16B()
    {
        // One row of two pixels, filter byte 0, big-endian 16-bit samples.
        ushort[] samples = [0x12C8, 0x00FF, 0xFF00, 0x80FF, 0x7F80, 0x0001];
        var row = new List<byte> { 0 };
        foreach (var s in samples) { row.Add((byte)(s >> 8)); row.Add((byte)s); }
        var png = TestImages.RawPng(2, 1, bitDepth: 16, colorType: 2, row.ToArray());
        var image = ImageDecoder.Decode(png, "rgb16.png");
        Assert.Equal(new byte[] { 0x12, 0x00, 0xFF, 0x80, 0x7F, 0x00 }, image.Pixels);
    }

    [Fact]
    public void PngGrayAlpha_DropsAlpha_WithoutBlending()
    {
        byte[] row = [0, 200, 0, 50, 255];   // filter 0; (gray 200, alpha 0), (gray 50, alpha 255)
        var image = ImageDecoder.Decode(TestImages.RawPng(2, 1, 8, colorType: 4, row), "la.png");
        Assert.Equal(new byte[] { 200, 200, 200, 50, 50, 50 }, image.Pixels);
    }

    [Fact]
    public void PngRgba_TransparentPixels_KeepTheirColour()
    {
        // Written by hand: Skia's encoder would premultiply and lose the colour of the alpha-0 pixel.
        var png = TestImages.RawPng(2, 1, 8, colorType: 6, [0, 10, 20, 30, 0, 40, 50, 60, 128]);
        var image = ImageDecoder.Decode(png, "rgba.png");
        Assert.Equal(new byte[] { 10, 20, 30, 40, 50, 60 }, image.Pixels);
    }

    [Fact]
    public void JpegGrayscale_DecodesToEqualChannels()
    {
        using var bitmap = new SKBitmap(new SKImageInfo(16, 8, SKColorType.Gray8, SKAlphaType.Opaque));
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 16; x++)
                bitmap.SetPixel(x, y, new SKColor((byte)(x * 15), (byte)(x * 15), (byte)(x * 15)));
        using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, 95);
        var image = ImageDecoder.Decode(data.ToArray(), "gray.jpg");
        Assert.Equal((16, 8), (image.Width, image.Height));
        for (int p = 0; p < 16 * 8; p++)
        {
            Assert.Equal(image.Pixels[3 * p], image.Pixels[3 * p + 1]);
            Assert.Equal(image.Pixels[3 * p], image.Pixels[3 * p + 2]);
        }
    }

    [Fact]
    public void GifTransparentIndex_KeepsItsPaletteColour_LikePilConvertRgb()
    {
        // PIL opens a GIF's first frame as "P"; convert("RGB") maps the transparent index to its palette
        // colour. Skia returns transparent black there, which the decoder must undo.
        byte[] gif =
        [
            .. "GIF89a"u8.ToArray(),
            2, 0, 1, 0, 0b1000_0000, 0, 0,                 // 2×1 screen, global table of 2 entries
            200, 100, 50, 10, 20, 30,                      // palette: 0 = (200,100,50), 1 = (10,20,30)
            0x21, 0xF9, 4, 0b0000_0001, 0, 0, 1, 0,        // graphic control: index 1 is transparent
            0x2C, 0, 0, 0, 0, 2, 0, 1, 0, 0,               // image descriptor 2×1, no local table
            2, 2, 0x0C, 0x0A, 0,                           // LZW, min code size 2: clear, 1, 0, end
            0x3B,
        ];
        var image = ImageDecoder.Decode(gif, "transparent.gif");
        Assert.Equal(new byte[] { 10, 20, 30, 200, 100, 50 }, image.Pixels);
    }
}
