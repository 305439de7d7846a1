using GuidedDiffusion.Checkpoints;
using System.Globalization;
using System.Text.RegularExpressions;

namespace GuidedDiffusion.Training;

/// <summary>
/// What happens to <c>--log_dir</c> before any training starts: it must be a writable folder, temp files our
/// own interrupted writes left are removed, a fresh run refuses a folder that already holds files (unless
/// <c>--overwrite True</c> moves them aside), and a run resumed into its own folder first drops the history
/// logged after the checkpoint it resumes from, so that its logs equal those of an uninterrupted run.
/// </summary>
public static partial class RunFolder
{
    /// <summary>The sub-folder prefix <c>--overwrite True</c> moves a previous run's files into.</summary>
    public const string ReplacedPrefix = "replaced-";

    /// <summary>
    /// Creates <paramref name="directory"/> if needed and proves it writable by creating and deleting a probe
    /// file, so an unusable folder fails in one line before the model is even built.
    /// </summary>
    /// <exception cref="RunFolderException">The path is a file, cannot be created, or cannot be written.</exception>
    public static void EnsureWritable(string directory)
    {
        if (File.Exists(directory))
            throw new RunFolderException(directory, $"{SettingText.Ref("log_dir")} '{directory}' is a file, not a folder; pass a folder for the run's logs and checkpoints.");
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunFolderException(directory, $"{SettingText.Ref("log_dir")} '{directory}' cannot be created: {e.Message}", e);
        }
        var probe = Path.Combine(directory, $".write-test.{Guid.NewGuid():N}.tmp");
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunFolderException(directory, $"{SettingText.Ref("log_dir")} '{directory}' is not writable: {e.Message}", e);
        }
    }

    /// <summary>
    /// Deletes the temp files of interrupted atomic writes (<c>.NAME.&lt;32 hex&gt;.tmp</c>, see <see cref="AtomicFile"/>):
    /// ours by name, and as large as a checkpoint. Returns the names removed.
    /// </summary>
    public static IReadOnlyList<string> RemoveOrphanedTempFiles(string directory)
    {
        var removed = new List<string>();
        if (!Directory.Exists(directory)) return removed;
        foreach (var file in Directory.EnumerateFiles(directory, ".*.tmp"))
        {
            if (!AtomicFile.IsTempName(Path.GetFileName(file))) continue;
            File.Delete(file);
            removed.Add(Path.GetFileName(file));
        }
        return removed;
    }

    /// <summary>The entries of <paramref name="directory"/> (empty when it does not exist).</summary>
    public static IReadOnlyList<string> Entries(string directory) =>
        Directory.Exists(directory) ? Directory.EnumerateFileSystemEntries(directory).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList() : [];

    /// <summary>
    /// Prepares the folder of a run that does not continue its own history: refuses a non-empty folder, or
    /// with <paramref name="overwrite"/> moves everything in it (earlier <c>replaced-*</c> folders excepted) into
    /// <c>replaced-&lt;yyyyMMdd-HHmmss&gt;/</c>, returning that folder (null when nothing was moved).
    /// </summary>
    /// <exception cref="ConfigurationException">The folder is not empty and <paramref name="overwrite"/> is false.</exception>
    public static string? PrepareFresh(string directory, bool overwrite)
    {
        var entries = Entries(directory);
        if (entries.Count == 0) return null;
        if (!overwrite)
            throw new ConfigurationException("log_dir",
                $"'{directory}' already holds {entries.Count} entries ({string.Join(", ", entries.Take(4))}{(entries.Count > 4 ? ", ..." : "")}) " +
                $"from an earlier run; pass {SettingText.Ref("resume_checkpoint")} auto to continue that run, {SettingText.Ref("overwrite")} True to move its files " +
                $"into {ReplacedPrefix}<time>/ and start afresh, or another {SettingText.Ref("log_dir")}.");
        var movable = entries.Where(e => !e.StartsWith(ReplacedPrefix, StringComparison.Ordinal)).ToList();
        if (movable.Count == 0) return null;
        var stamp = DateTime.Now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture);
        var target = Path.Combine(directory, ReplacedPrefix + stamp);
        for (int i = 2; Directory.Exists(target); i++) target = Path.Combine(directory, $"{ReplacedPrefix}{stamp}-{i}");
        Directory.CreateDirectory(target);
        foreach (var name in movable)
        {
            var from = Path.Combine(directory, name);
            if (Directory.Exists(from)) Directory.Move(from, Path.Combine(target, name));
            else File.Move(from, Path.Combine(target, name));
        }
        return target;
    }

    /// <summary>
    /// Drops the history a resumed run is about to log again: rows of <c>progress.csv</c> (every
    /// <c>progress*.csv</c>) whose <c>step</c> is at least <paramref name="firstStep"/>, and TensorBoard events
    /// at those steps (TensorBoard would show both). log.txt is a journal and only gets a note (by the caller).
    /// Returns the number of CSV rows and events dropped.
    /// </summary>
    public static (int Rows, int Events) TruncateHistory(string directory, long firstStep)
    {
        int rows = 0, events = 0;
        foreach (var csv in Directory.Exists(directory) ? Directory.EnumerateFiles(directory, "progress*.csv") : [])
            rows += TruncateCsv(csv, firstStep);
        var tb = Path.Combine(directory, "tb");
        if (Directory.Exists(tb))
            foreach (var file in Directory.EnumerateFiles(tb, "events.out.tfevents.*", SearchOption.AllDirectories))
                events += TensorBoardEvents.DropFromStep(file, firstStep);
        return (rows, events);
    }

    /// <summary>
    /// The run-folder steps of a training job, before its model is built: checks (rank 0) that the folder is
    /// writable and removes orphaned temp files, finds the resume point (every rank), and then (rank 0) either
    /// drops the history after the resume point (a run continued in its own folder, including
    /// <c>--resume_checkpoint auto</c> that finds no checkpoint yet) or prepares a fresh folder.
    /// </summary>
    /// <returns>The resume point, whether the logs continue the folder's history, and lines for the log.</returns>
    internal static (ResumePoint? Resume, bool Continues, IReadOnlyList<string> Notes) Open(
        CheckpointSettings checkpoints, string directory, bool isMain, Func<ResumePoint?> findResume)
    {
        var notes = new List<string>();
        bool auto = checkpoints.ResumeCheckpoint == "auto";
        if (auto && checkpoints.Overwrite)
            throw new ConfigurationException("overwrite", $"True would move away the run that {SettingText.Ref("resume_checkpoint")} auto continues; pass only one of them.");
        if (isMain)
        {
            EnsureWritable(directory);
            foreach (var name in RemoveOrphanedTempFiles(directory))
                notes.Add($"removed '{name}', the temp file of an interrupted write");
        }
        var resume = findResume();
        foreach (var skipped in resume?.SkippedNonFinite ?? [])
            notes.Add($"{SettingText.Ref("resume_checkpoint")} auto: passed over '{skipped}', which holds NaN or infinite weights");
        bool continues = auto || (resume is not null
            && Path.GetFullPath(Path.GetDirectoryName(Path.GetFullPath(resume.ModelPath))!) == Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)));
        if (isMain)
        {
            if (continues)
            {
                long first = resume?.CompletedSteps ?? 0;
                var (rows, events) = TruncateHistory(directory, first);
                if (rows + events > 0)
                    notes.Add($"resuming at step {first}: dropped {rows} progress.csv rows and {events} TensorBoard events that the interrupted run logged after its last checkpoint (log.txt above still shows them)");
            }
            else if (PrepareFresh(directory, checkpoints.Overwrite) is { } moved)
            {
                notes.Add($"overwrite True: moved the earlier run's files into '{moved}'");
            }
        }
        return (resume, continues, notes);
    }

    private static int TruncateCsv(string path, long firstStep)
    {
        var lines = File.ReadAllLines(path);
        if (lines.Length < 2) return 0;
        int stepColumn = Array.IndexOf(lines[0].Split(','), "step");
        if (stepColumn < 0) return 0;
        var kept = new List<string> { lines[0] };
        foreach (var line in lines.Skip(1))
        {
            var cells = line.Split(',');
            bool later = stepColumn < cells.Length
                && double.TryParse(cells[stepColumn], NumberStyles.Float, CultureInfo.InvariantCulture, out var step) && step >= firstStep;
            if (!later) kept.Add(line);
        }
        int dropped = lines.Length - kept.Count;
        if (dropped > 0)
            AtomicFile.Write(path, stream =>
            {
                using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true);
                foreach (var line in kept) writer.WriteLine(line);
            });
        return dropped;
    }
}
