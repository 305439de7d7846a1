namespace GuidedDiffusion.Data.Decoding;

/// <summary>An image file could not be read or decoded. The message names the file and the decoder's reason.</summary>
public sealed class ImageDecodeException : IOException
{
    /// <summary>Creates the exception for <paramref name="path"/>.</summary>
    public ImageDecodeException(string path, string reason, Exception? inner = null)
        : base(SettingText.Plain($"Cannot decode image '{path}': {reason}"), inner)
    {
        Path = path;
        Reason = SettingText.Plain(reason);
        this.WithMarkedMessage($"Cannot decode image '{path}': {reason}");
    }

    /// <summary>The file (or IDX record) that failed.</summary>
    public string Path { get; }

    /// <summary>Why it failed, in the decoder's words.</summary>
    public string Reason { get; }
}
