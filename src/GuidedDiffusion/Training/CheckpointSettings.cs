namespace GuidedDiffusion.Training;

/// <summary>
/// The run folder section of the training settings: where logs and checkpoints go, how often, and resuming.
/// Defaults are the original's (both scripts agree).
/// </summary>
public sealed record CheckpointSettings
{
    /// <summary><c>log_dir</c>: the run folder; empty: OPENAI_LOGDIR, else runs/&lt;timestamp&gt; (the original's logger).</summary>
    public string LogDir { get; init; } = "";

    /// <summary><c>resume_checkpoint</c>: modelNNNNNN.pt to resume from, or <c>auto</c> for the newest in the run folder. Default empty.</summary>
    public string ResumeCheckpoint { get; init; } = "";

    /// <summary><c>log_interval</c>: steps between metric dumps. Default 10.</summary>
    public int LogInterval { get; init; } = 10;

    /// <summary><c>save_interval</c>: steps between checkpoints. Default 10000.</summary>
    public int SaveInterval { get; init; } = 10000;

    /// <summary>
    /// <c>overwrite</c>: a fresh run into a non-empty run folder moves the folder's files into
    /// <c>replaced-&lt;time&gt;/</c> inside it instead of refusing to start. Default false (ours).
    /// </summary>
    public bool Overwrite { get; init; }

    /// <summary><c>allow_config_mismatch</c>: resume even if the checkpoint's recorded architecture differs. Default false (ours).</summary>
    public bool AllowConfigMismatch { get; init; }

    /// <summary>The run folder: <see cref="LogDir"/>, else OPENAI_LOGDIR, else runs/&lt;timestamp&gt; (the original's logger).</summary>
    public string ResolveLogDirectory() =>
        !string.IsNullOrWhiteSpace(LogDir) ? LogDir
        : Environment.GetEnvironmentVariable("OPENAI_LOGDIR") is { Length: > 0 } env ? env
        : Path.Combine("runs", DateTime.Now.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Rejects values that cannot work, naming the setting.</summary>
    /// <exception cref="ConfigurationException">An interval below 1.</exception>
    public void Validate()
    {
        if (LogInterval < 1) throw new ConfigurationException("log_interval", $"must be at least 1, got {LogInterval}.");
        if (SaveInterval < 1) throw new ConfigurationException("save_interval", $"must be at least 1, got {SaveInterval}.");
    }
}
