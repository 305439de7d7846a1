using GuidedDiffusion.Cli;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Tests.Training;

/// <summary>
/// Run folders that are unusable, reused, interrupted or full (issue 15): nothing lost, nothing duplicated.
/// The training runs use a 32×32 two-class model (well under a second a step).
/// </summary>
public class RunFolderTests
{
    private static readonly ClassifierConfig Tiny = TrainingFixtures.SmallClassifier(null) with { ImageSize = 32, ChannelMult = [1, 2], AttentionResolutions = [16] };
    private static readonly Lazy<string> Images = new(() => TrainingFixtures.ImageFolder(2, 4, size: 32));

    private static TrainingConfig Run(string log, int iterations, string resume = "", bool overwrite = false)
    {
        var config = TrainingFixtures.ShortRun(Images.Value, "", log, iterations);
        return config with { Checkpoints = config.Checkpoints with { LogInterval = 1, SaveInterval = 3, ResumeCheckpoint = resume, Overwrite = overwrite } };
    }

    private sealed class SimulatedKill : Exception;

    /// <summary>Trains until <paramref name="killAfter"/> updates are done, then dies like kill -9: no final checkpoint.</summary>
    private static void RunAndKill(TrainingConfig config, long killAfter)
    {
        var job = new ClassifierTrainingJob(config, Tiny, TrainingFixtures.Diffusion)
        {
            OnStep = (done, _, _) => { if (done == killAfter) throw new SimulatedKill(); },
        };
        Assert.Throws<SimulatedKill>(() => job.Run());
    }

    [Fact]
    public void InterruptedAndResumedRun_HasTheHistoryOfAnUninterruptedOne()
    {
        var straight = TestImages.TempDir();
        new ClassifierTrainingJob(Run(straight, 8), Tiny, TrainingFixtures.Diffusion).Run();

        var interrupted = TestImages.TempDir();
        // Checkpoints after updates 4 (model000003); killed during update 6, whose row 5 is not logged: rows 0-4 exist.
        RunAndKill(Run(interrupted, 8), killAfter: 6);
        Assert.Equal(6, File.ReadAllLines(Path.Combine(interrupted, "progress.csv")).Length);
        var resumed = new ClassifierTrainingJob(Run(interrupted, 8, resume: "auto"), Tiny, TrainingFixtures.Diffusion).Run();
        Assert.Equal(8, resumed.CompletedSteps);

        // Before the fix the resumed file held row 4 twice (the original's bug: rows after the last checkpoint repeat).
        Assert.Equal(File.ReadAllLines(Path.Combine(straight, "progress.csv")), File.ReadAllLines(Path.Combine(interrupted, "progress.csv")));
        var steps = Directory.GetFiles(Path.Combine(interrupted, "tb"), "events.out.tfevents.*", SearchOption.AllDirectories)
            .SelectMany(TensorBoardEvents.SummarySteps).ToList();
        var straightSteps = Directory.GetFiles(Path.Combine(straight, "tb"), "events.out.tfevents.*", SearchOption.AllDirectories)
            .SelectMany(TensorBoardEvents.SummarySteps).ToList();
        Assert.NotEmpty(straightSteps);
        Assert.Equal(straightSteps.Order(), steps.Order());
        Assert.Contains("resuming at step 4: dropped 1 progress.csv rows", File.ReadAllText(Path.Combine(interrupted, "log.txt")));
    }

    [Fact]
    public void FreshRunIntoAUsedFolder_IsRefused_AndOverwriteMovesTheOldRunAside()
    {
        var log = TestImages.TempDir();
        new ClassifierTrainingJob(Run(log, 2), Tiny, TrainingFixtures.Diffusion).Run();
        var before = File.ReadAllText(Path.Combine(log, "progress.csv"));

        var e = Assert.Throws<ConfigurationException>(() => new ClassifierTrainingJob(Run(log, 2), Tiny, TrainingFixtures.Diffusion).Run());
        Assert.Contains("--log_dir", CliErrors.Describe(e));
        Assert.Contains("--resume_checkpoint auto", CliErrors.Describe(e));
        Assert.Contains("--overwrite True", CliErrors.Describe(e));
        Assert.Equal(before, File.ReadAllText(Path.Combine(log, "progress.csv"))); // untouched

        new ClassifierTrainingJob(Run(log, 2, overwrite: true), Tiny, TrainingFixtures.Diffusion).Run();
        var replaced = Assert.Single(Directory.GetDirectories(log, RunFolder.ReplacedPrefix + "*"));
        Assert.Equal(before, File.ReadAllText(Path.Combine(replaced, "progress.csv")));
        Assert.True(File.Exists(Path.Combine(replaced, "model000001.pt")));
        Assert.Equal(new[] { "model000001.pt" }, Directory.GetFiles(log, "model*.pt").Select(Path.GetFileName));

        Assert.Throws<ConfigurationException>(() =>
            new ClassifierTrainingJob(Run(log, 2, resume: "auto", overwrite: true), Tiny, TrainingFixtures.Diffusion).Run());
    }

    [Fact]
    public void OrphanedTempFiles_AreRemovedAtStart_OthersKept()
    {
        var log = TestImages.TempDir();
        RunAndKill(Run(log, 8), killAfter: 2);
        var orphan = Path.Combine(log, $".model000003.pt.{Guid.NewGuid():N}.tmp");
        var foreign = Path.Combine(log, ".notes.tmp");
        File.WriteAllBytes(orphan, new byte[1000]);
        File.WriteAllText(foreign, "not ours");
        RunAndKill(Run(log, 8, resume: "auto"), killAfter: 1);
        Assert.False(File.Exists(orphan));
        Assert.True(File.Exists(foreign));
        Assert.Contains($"removed '{Path.GetFileName(orphan)}'", File.ReadAllText(Path.Combine(log, "log.txt")));
    }

    [Theory]
    [InlineData("file")]
    [InlineData("under-file")]
    [InlineData("proc")]
    public void UnwritableLogDir_FailsBeforeTraining_NamingThePathAndReason(string kind)
    {
        var dir = TestImages.TempDir();
        var file = Path.Combine(dir, "a-file");
        File.WriteAllText(file, "x");
        // Root ignores permission bits, so the unwritable folders are ones no user can write: under a regular
        // file, and in /proc.
        var log = kind switch { "file" => file, "under-file" => Path.Combine(file, "run"), _ => $"/proc/gd-test-{Guid.NewGuid():N}" };
        var steps = 0;
        var e = Assert.Throws<RunFolderException>(() =>
            new ClassifierTrainingJob(Run(log, 2), Tiny, TrainingFixtures.Diffusion) { OnStep = (_, _, _) => steps++ }.Run());
        Assert.Contains(log, e.Message);
        Assert.Equal(0, steps);
        Assert.DoesNotContain('\n', e.Message);
        if (kind == "file") Assert.Contains("is a file", e.Message);
    }

    /// <summary>A stream that fails like a full disk once <paramref name="capacity"/> bytes are written.</summary>
    private sealed class FullDiskStream(Stream inner, long capacity) : Stream
    {
        private long _written;
        public override bool CanRead => false;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => true;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void SetLength(long value) => inner.SetLength(value);
        public override void Write(byte[] buffer, int offset, int count)
        {
            if (_written + count > capacity) throw new IOException("No space left on device");
            _written += count;
            inner.Write(buffer, offset, count);
        }
    }

    [Fact]
    public void DiskFullWhileOptimizerStateIsWritten_OneErrorNamingTheFile_PreviousCheckpointStaysNewest()
    {
        var log = TestImages.TempDir();
        var config = Run(log, 8);
        var job = new ClassifierTrainingJob(config, Tiny, TrainingFixtures.Diffusion)
        {
            // The first checkpoint (model000003) is written normally; the disk is full from update 5 on.
            OnStep = (done, _, _) =>
            {
                if (done == 5) AtomicFile.Intercept = (path, s) => Path.GetFileName(path).StartsWith("opt", StringComparison.Ordinal) ? new FullDiskStream(s, 1000) : s;
            },
        };
        RunFolderException e;
        try
        {
            e = Assert.Throws<RunFolderException>(() => job.Run());
        }
        finally
        {
            AtomicFile.Intercept = null;
        }
        Assert.Contains("opt000006.pt", e.Message);
        Assert.Contains("No space left on device", e.Message);
        Assert.Contains("model000003.pt", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        // No file of the failed index, no temp file; auto resumes from the previous complete checkpoint.
        Assert.Empty(Directory.GetFiles(log, "*000006*"));
        Assert.Empty(Directory.GetFiles(log, "*.tmp"));
        var point = ResumePoint.Find("auto", log, Tiny with { NumClasses = 2 }, allowMismatch: false);
        Assert.EndsWith("model000003.pt", point!.ModelPath);
    }
}
