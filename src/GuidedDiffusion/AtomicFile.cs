using System.Text.RegularExpressions;

namespace GuidedDiffusion;

/// <summary>
/// Writes a file through a temporary file in the same folder and renames it over the target, so a crash
/// or a full disk never leaves a half-written checkpoint under the real name.
/// </summary>
public static partial class AtomicFile
{
    private static readonly AsyncLocal<Func<string, Stream, Stream>?> s_intercept = new();

    /// <summary>
    /// Fault-injection seam (tests): wraps the temp-file stream of every write made on the current async flow,
    /// given the target path, e.g. with a stream that fails like a full disk. Null (the default): none.
    /// </summary>
    public static Func<string, Stream, Stream>? Intercept
    {
        get => s_intercept.Value;
        set => s_intercept.Value = value;
    }

    /// <summary>Runs <paramref name="write"/> on a temp stream, flushes it to disk, then moves it to <paramref name="path"/>.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        var fullPath = Path.GetFullPath(path);
        var temp = Path.Combine(Path.GetDirectoryName(fullPath)!, TempName(Path.GetFileName(fullPath)));
        try
        {
            using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                var stream = Intercept is { } wrap ? wrap(fullPath, file) : file;
                write(stream);
                stream.Flush();
                file.Flush(flushToDisk: true);
            }
            File.Move(temp, fullPath, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>Whether <paramref name="fileName"/> is one of our temp names (<c>.NAME.&lt;32 hex digits&gt;.tmp</c>).</summary>
    public static bool IsTempName(string fileName) => TempPattern().IsMatch(fileName);

    private static string TempName(string fileName) => $".{fileName}.{Guid.NewGuid():N}.tmp";

    [GeneratedRegex(@"^\..+\.[0-9a-f]{32}\.tmp$")]
    private static partial Regex TempPattern();
}
