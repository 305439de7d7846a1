namespace GuidedDiffusion.Data.Decoding;

/// <summary>
/// Reads, from a GIF's header, the palette colour of the first frame's transparent index and the frame's
/// rectangle. PIL keeps that colour when converting the frame to RGB; Skia decodes those pixels as
/// transparent black, so the decoder puts the colour back.
/// </summary>
internal static class GifTransparency
{
    /// <summary>The first frame's transparent colour and rectangle, or false when it has no transparency.</summary>
    public static bool TryRead(byte[] gif, out byte[] rgb, out (int X, int Y, int Width, int Height) frame)
    {
        rgb = [];
        frame = default;
        try
        {
            return TryReadCore(gif, out rgb, out frame);
        }
        catch (IndexOutOfRangeException)
        {
            // A truncated header: Skia has already decoded the pixels, so leave them as they are.
            return false;
        }
    }

    private static bool TryReadCore(byte[] gif, out byte[] rgb, out (int X, int Y, int Width, int Height) frame)
    {
        rgb = [];
        frame = default;
        if (gif.Length < 13 || gif[0] != 'G' || gif[1] != 'I' || gif[2] != 'F') return false;
        int pos = 10;
        byte flags = gif[pos];
        pos += 3;
        byte[]? globalTable = null;
        if ((flags & 0x80) != 0)
        {
            int size = 3 << ((flags & 7) + 1);
            globalTable = gif[pos..(pos + size)];
            pos += size;
        }

        int transparentIndex = -1;
        while (pos < gif.Length)
        {
            byte block = gif[pos++];
            if (block == 0x21)
            {
                byte label = gif[pos++];
                if (label == 0xF9 && gif[pos] >= 4)
                {
                    // Graphic control extension: packed flags, delay (2 bytes), transparent index.
                    transparentIndex = (gif[pos + 1] & 1) != 0 ? gif[pos + 4] : -1;
                }
                while (gif[pos] != 0) pos += gif[pos] + 1;
                pos++;
            }
            else if (block == 0x2C)
            {
                int x = gif[pos] | (gif[pos + 1] << 8), y = gif[pos + 2] | (gif[pos + 3] << 8);
                int w = gif[pos + 4] | (gif[pos + 5] << 8), h = gif[pos + 6] | (gif[pos + 7] << 8);
                byte imageFlags = gif[pos + 8];
                pos += 9;
                byte[]? table = globalTable;
                if ((imageFlags & 0x80) != 0)
                {
                    int size = 3 << ((imageFlags & 7) + 1);
                    table = gif[pos..(pos + size)];
                }
                if (transparentIndex < 0 || table is null || 3 * transparentIndex + 2 >= table.Length) return false;
                rgb = table[(3 * transparentIndex)..(3 * transparentIndex + 3)];
                frame = (x, y, w, h);
                return true;
            }
            else
            {
                return false;
            }
        }
        return false;
    }
}
