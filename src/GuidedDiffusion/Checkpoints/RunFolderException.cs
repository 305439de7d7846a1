namespace GuidedDiffusion.Checkpoints;

/// <summary>
/// The run folder (or a file in it) cannot be created or written: the message names the path and the
/// operating system's reason in one line.
/// </summary>
public sealed class RunFolderException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The folder or file that could not be written.</param>
    /// <param name="message">One line naming the path and the reason.</param>
    /// <param name="inner">The underlying I/O error, if any.</param>
    public RunFolderException(string path, string message, Exception? inner = null) : base(SettingText.Plain(message), inner)
    {
        Path = path;
        this.WithMarkedMessage(message);
    }

    /// <summary>The folder or file that could not be written.</summary>
    public string Path { get; }
}
