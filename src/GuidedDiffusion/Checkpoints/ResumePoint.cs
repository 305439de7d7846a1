using GuidedDiffusion.Models;

namespace GuidedDiffusion.Checkpoints;

/// <summary>
/// Where a run resumes from: a modelNNNNNN.pt with its optimizer file and (ours) its sidecar. Unlike the
/// original, which re-runs update NNNNNN, we continue after the recorded number of completed updates.
/// </summary>
public sealed class ResumePoint
{
    private ResumePoint(string modelPath, CheckpointManifest? manifest, long completedSteps, IReadOnlyList<string> skippedNonFinite)
    {
        ModelPath = modelPath;
        Manifest = manifest;
        CompletedSteps = completedSteps;
        SkippedNonFinite = skippedNonFinite;
    }

    /// <summary>Newer checkpoints that <c>auto</c> passed over because they hold NaN or infinite values.</summary>
    public IReadOnlyList<string> SkippedNonFinite { get; }

    /// <summary>The model checkpoint.</summary>
    public string ModelPath { get; }

    /// <summary>Our sidecar, or null for a checkpoint written by the original.</summary>
    public CheckpointManifest? Manifest { get; }

    /// <summary>Updates already contained in the weights.</summary>
    public long CompletedSteps { get; }

    /// <summary>
    /// Resolves <c>--resume_checkpoint</c>: "" → null (fresh run); "auto" → the newest complete checkpoint in
    /// <paramref name="logDir"/> (null when there is none); else the given file. A sidecar whose classifier
    /// config differs from <paramref name="classifier"/> is an error unless <paramref name="allowMismatch"/>
    /// (gradient checkpointing may change between runs: it does not change the weights).
    /// </summary>
    public static ResumePoint? Find(string resumeCheckpoint, string logDir, ClassifierConfig classifier, bool allowMismatch) =>
        Find(resumeCheckpoint, logDir, allowMismatch, "classifier",
            manifest => manifest.Classifier is { } recorded && recorded with { UseCheckpoint = classifier.UseCheckpoint } is var saved
                ? (saved == classifier ? null : Differences(saved, classifier)) : "the checkpoint holds no classifier");

    /// <summary>
    /// <see cref="Find(string, string, ClassifierConfig, bool)"/> for a diffusion model: the sidecar's UNet config
    /// must equal <paramref name="model"/>.
    /// </summary>
    public static ResumePoint? Find(string resumeCheckpoint, string logDir, DiffusionModelConfig model, bool allowMismatch) =>
        Find(resumeCheckpoint, logDir, allowMismatch, "diffusion model",
            manifest => manifest.DiffusionModel is { } recorded && recorded with { UseCheckpoint = model.UseCheckpoint } is var saved
                ? (saved == model ? null : Differences(saved, model)) : "the checkpoint holds no diffusion model");

    private static ResumePoint? Find(string resumeCheckpoint, string logDir, bool allowMismatch, string what, Func<CheckpointManifest, string?> differences)
    {
        if (string.IsNullOrWhiteSpace(resumeCheckpoint)) return null;
        var skipped = new List<string>();
        string? path = resumeCheckpoint == "auto" ? LatestFinite(logDir, skipped) : resumeCheckpoint;
        if (path is null) return null;
        if (!File.Exists(path))
            throw new CheckpointException(path, $"{SettingText.Ref("resume_checkpoint")} '{path}' does not exist.");
        long index = CheckpointStore.ParseIndex(path);
        var optPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, CheckpointStore.OptimizerFile(index));
        if (!File.Exists(optPath))
            throw new CheckpointException(optPath, $"{SettingText.Ref("resume_checkpoint")} '{path}': its optimizer state '{optPath}' is missing; resuming needs both files.");

        var sidecar = CheckpointManifest.PathFor(path);
        var manifest = File.Exists(sidecar) ? CheckpointManifest.Read(sidecar) : null;
        if (manifest is not null && differences(manifest) is { } difference)
        {
            var message = $"{SettingText.Ref("resume_checkpoint")} '{path}' was trained with a different {what} config: {difference}.";
            if (!allowMismatch)
                throw new ConfigurationException("resume_checkpoint", message + $" Pass the same flags, or {SettingText.Ref("allow_config_mismatch")} True to load it anyway.");
        }
        // Without our sidecar the optimizer's AdamW step says how many updates the weights hold; the file name does
        // not (classifier_train.py's index is the update just made, image_train.py's last file counts them).
        return new ResumePoint(path, manifest, manifest?.CompletedSteps ?? CheckpointStore.OptimizerSteps(optPath) ?? index + 1, skipped);
    }

    // "auto" never continues from weights a diverged run wrote (NaN or infinite values): the newest complete
    // checkpoint whose model file is finite; the ones passed over are listed in skipped.
    private static string? LatestFinite(string logDir, List<string> skipped)
    {
        foreach (var path in CheckpointStore.CompleteCheckpoints(logDir))
        {
            if (AllFinite(path)) return path;
            skipped.Add(path);
        }
        if (skipped.Count > 0)
            throw new CheckpointException(skipped[0], $"{SettingText.Ref("resume_checkpoint")} auto: every checkpoint in '{logDir}' holds NaN or infinite weights "
                + $"({skipped.Count} file(s)); nothing to continue from. Pass {SettingText.Ref("overwrite")} True to start over (the files are moved aside, not deleted).");
        return null;
    }

    private static bool AllFinite(string path)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        return StateDictIO.Read(path).Values.All(t => !t.is_floating_point() || t.isfinite().all().item<bool>());
    }

    /// <summary>The optimizer file written with <see cref="ModelPath"/> (<c>optNNNNNN.pt</c>).</summary>
    public string OptimizerPath => Path.Combine(Folder, CheckpointStore.OptimizerFile(CheckpointStore.ParseIndex(ModelPath)));

    /// <summary>The EMA file at <paramref name="rate"/> written with <see cref="ModelPath"/> (it may be missing).</summary>
    public string EmaPath(double rate) => Path.Combine(Folder, CheckpointStore.EmaFile(rate, CheckpointStore.ParseIndex(ModelPath)));

    private string Folder => Path.GetDirectoryName(Path.GetFullPath(ModelPath))!;

    private static string Differences<T>(T saved, T current) where T : class =>
        SettingAgreement.Describe(SettingAgreement.Differences(current, saved, typed: null), "checkpoint");
}
