using SkiaSharp;

namespace GuidedDiffusion.Data.Decoding;

/// <summary>
/// Decodes JPEG, PNG and GIF (first frame) files to RGB the way the original's
/// <c>Image.open(f).convert("RGB")</c> does.
/// </summary>
/// <remarks>
/// Decoding goes through <see cref="SKCodec"/> into unpremultiplied RGBA without a colour space, so no
/// alpha premultiplication and no colour management touch the values; alpha is then dropped (PIL's
/// convert("RGB") drops it, it does not blend onto a background). With this, JPEG (libjpeg-turbo on
/// both sides, grayscale and Adobe CMYK included) and PNG (gray, RGB, RGBA, palette) decode bit-exactly
/// as in PIL. 16-bit PNG channels are reduced to their high byte, as PIL's "RGB;16B" raw mode does
/// (a deliberate difference for 16-bit grayscale: Pillow 9.4 opens it as mode "I" and its RGB
/// conversion clips the 0..65535 values to 255, turning most such images white).
/// GIF: the first frame; pixels of its transparent index get that index's palette colour, as PIL's
/// convert("RGB") of the "P" frame gives (Skia would return black). EXIF orientation is ignored, as in
/// the original.
/// </remarks>
public static class ImageDecoder
{
    /// <summary>PIL's <c>Image.MAX_IMAGE_PIXELS</c> default (1024 · 1024 · 1024 / 4 / 3): above it decoding warns.</summary>
    public const long DefaultMaxImagePixels = RunContext.DefaultMaxImagePixels;

    /// <summary>Reads and decodes <paramref name="path"/>.</summary>
    /// <param name="path">The image file.</param>
    /// <param name="limit">The decompression-bomb limit and where its warning goes (null: <see cref="ImageDecodeLimit.Default"/>).</param>
    /// <exception cref="ImageDecodeException">The file is unreadable, empty, truncated, corrupt or not an image.</exception>
    public static RgbImage Decode(string path, ImageDecodeLimit? limit = null)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageDecodeException(path, e.Message, e);
        }
        limit ??= ImageDecodeLimit.Default;
        return Decode(bytes, path, limit.MaxPixels, limit.Warn);
    }

    /// <summary>Decodes encoded image bytes with <see cref="ImageDecodeLimit.Default"/>; <paramref name="name"/> is used in error messages.</summary>
    /// <exception cref="ImageDecodeException">The bytes are empty, truncated, corrupt or not an image.</exception>
    public static RgbImage Decode(byte[] encoded, string name) => Decode(encoded, name, ImageDecodeLimit.Default.MaxPixels, ImageDecodeLimit.Default.Warn);

    /// <summary>Decodes encoded image bytes with an explicit decompression-bomb limit (see <see cref="RunContext.MaxImagePixels"/>).</summary>
    /// <param name="encoded">The file's bytes.</param>
    /// <param name="name">The file, named in errors and the warning.</param>
    /// <param name="maxPixels">Warn above this many pixels, refuse above twice as many.</param>
    /// <param name="warn">Receives the above-limit warning (null: it is dropped).</param>
    /// <exception cref="ImageDecodeException">The bytes are empty, truncated, corrupt, not an image, or too large.</exception>
    public static RgbImage Decode(byte[] encoded, string name, long maxPixels, Action<string>? warn = null)
    {
        ArgumentNullException.ThrowIfNull(encoded);
        if (encoded.Length == 0)
            throw new ImageDecodeException(name, "the file is empty (0 bytes)");

        // The codec takes ownership of the stream when it is created; disposing it again is harmless.
        using var stream = new SKMemoryStream(encoded);
        using var codec = SKCodec.Create(stream, out var createResult);
        if (codec is null)
            throw new ImageDecodeException(name, $"not a recognised JPEG/PNG/GIF image (SkiaSharp: {createResult}; first bytes {Hex(encoded)})");

        int width = codec.Info.Width, height = codec.Info.Height;
        if (width <= 0 || height <= 0)
            throw new ImageDecodeException(name, $"invalid dimensions {width}×{height}");
        CheckSize(name, width, height, maxPixels, warn);

        bool sixteenBit = codec.Info.ColorType is SKColorType.Rgba16161616 or SKColorType.RgbaF16 or SKColorType.RgbaF16Clamped or SKColorType.RgbaF32;
        return sixteenBit
            ? DecodeSixteenBit(codec, width, height, name)
            : DecodeEightBit(codec, width, height, name, codec.EncodedFormat == SKEncodedImageFormat.Gif ? encoded : null);
    }

    private static RgbImage DecodeEightBit(SKCodec codec, int width, int height, string name, byte[]? gif)
    {
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[(long)width * height * 4];
        GetPixels(codec, info, rgba, name);
        if (gif is not null)
            RestoreGifTransparentColour(gif, rgba, width, height);
        var image = new RgbImage(width, height);
        byte[] rgb = image.Pixels;
        for (int i = 0, j = 0; j < rgb.Length; i += 4, j += 3)
        {
            rgb[j] = rgba[i];
            rgb[j + 1] = rgba[i + 1];
            rgb[j + 2] = rgba[i + 2];
        }
        return image;
    }

    private static void RestoreGifTransparentColour(byte[] gif, byte[] rgba, int width, int height)
    {
        if (!GifTransparency.TryRead(gif, out var rgb, out var frame)) return;
        int x1 = Math.Min(width, frame.X + frame.Width), y1 = Math.Min(height, frame.Y + frame.Height);
        for (int y = frame.Y; y < y1; y++)
        {
            for (int x = frame.X; x < x1; x++)
            {
                int i = (y * width + x) * 4;
                // In a GIF only the transparent index yields alpha 0.
                if (rgba[i + 3] != 0) continue;
                rgba[i] = rgb[0];
                rgba[i + 1] = rgb[1];
                rgba[i + 2] = rgb[2];
            }
        }
    }

    private static RgbImage DecodeSixteenBit(SKCodec codec, int width, int height, string name)
    {
        // Decoding 16-bit PNG straight to 8 bits would round (v·255/65535); PIL keeps the high byte.
        var info = new SKImageInfo(width, height, SKColorType.Rgba16161616, SKAlphaType.Unpremul);
        var rgba = new byte[(long)width * height * 8];
        GetPixels(codec, info, rgba, name);
        var image = new RgbImage(width, height);
        byte[] rgb = image.Pixels;
        for (int i = 0, j = 0; j < rgb.Length; i += 8, j += 3)
        {
            // Little-endian 16-bit channels: the high byte is the second.
            rgb[j] = rgba[i + 1];
            rgb[j + 1] = rgba[i + 3];
            rgb[j + 2] = rgba[i + 5];
        }
        return image;
    }

    private static void GetPixels(SKCodec codec, SKImageInfo info, byte[] buffer, string name)
    {
        SKCodecResult result;
        var pin = System.Runtime.InteropServices.GCHandle.Alloc(buffer, System.Runtime.InteropServices.GCHandleType.Pinned);
        try
        {
            result = codec.GetPixels(info, pin.AddrOfPinnedObject());
        }
        finally
        {
            pin.Free();
        }
        switch (result)
        {
            case SKCodecResult.Success:
                return;
            case SKCodecResult.IncompleteInput:
                // PIL raises "image file is truncated" here; a partially grey image must not reach training.
                throw new ImageDecodeException(name, $"the image data is truncated (SkiaSharp: {result})");
            default:
                throw new ImageDecodeException(name, $"the image data is corrupt or unsupported (SkiaSharp: {result})");
        }
    }

    /// <summary>
    /// PIL's decompression-bomb rule on the header's claimed size, checked before the pixel buffer exists (a
    /// 100000×100000 header used to overflow the 32-bit buffer size and let the decoder write past it).
    /// </summary>
    private static void CheckSize(string name, int width, int height, long maxPixels, Action<string>? warn)
    {
        long pixels = (long)width * height;
        if (pixels > 2 * maxPixels)
            throw new ImageDecodeException(name,
                $"the header claims {width}×{height} = {pixels:N0} pixels, more than twice the limit of {maxPixels:N0} " +
                $"(a possible decompression bomb; raise {SettingText.Ref("max_image_pixels")} if the image is genuine)");
        // 8 bytes a pixel for 16-bit PNG: the decode buffer must fit one .NET array.
        if (pixels * 8 > Array.MaxLength)
            throw new ImageDecodeException(name, $"{width}×{height} pixels is too large to decode in one buffer");
        if (pixels > maxPixels)
            warn?.Invoke($"warning: '{name}' has {width}×{height} = {pixels:N0} pixels, more than the limit of {maxPixels:N0} (a possible decompression bomb; decoding it anyway, as PIL does below twice the limit)");
    }

    private static string Hex(byte[] bytes) => Convert.ToHexString(bytes, 0, Math.Min(8, bytes.Length));
}
