namespace GuidedDiffusion;

/// <summary>
/// Writes a file through a temporary file in the same folder and renames it over the target, so a crash
/// or a full disk never leaves a half-written checkpoint under the real name.
/// </summary>
public static class AtomicFile
{
    /// <summary>Runs <paramref name="write"/> on a temp stream, flushes it to disk, then moves it to <paramref name="path"/>.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        var fullPath = Path.GetFullPath(path);
        var temp = Path.Combine(Path.GetDirectoryName(fullPath)!, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, fullPath, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}
