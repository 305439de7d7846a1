namespace GuidedDiffusion.Training;

/// <summary>
/// The validation section of classifier training: classifier_train.py's validation set and <c>eval_interval</c>,
/// plus our flips and end-of-run table. image-train has no validation.
/// </summary>
public sealed record ValidationSettings
{
    /// <summary><c>val_data_dir</c>: validation images, labelled with the training classes; empty disables validation (as the original).</summary>
    public string ValDataDir { get; init; } = "";

    /// <summary><c>eval_interval</c>: steps between validation batches. Default 5.</summary>
    public int EvalInterval { get; init; } = 5;

    /// <summary><c>flip_validation</c>: flip validation images at random, as the original does. Default false (repeatable evaluation).</summary>
    public bool FlipValidation { get; init; }

    /// <summary><c>eval_table</c>: print accuracy per noise level on the whole validation set at the end. Default true.</summary>
    public bool EvalTable { get; init; } = true;

    /// <summary>Rejects values that cannot work, naming the setting.</summary>
    /// <exception cref="ConfigurationException">An interval below 1.</exception>
    public void Validate()
    {
        if (EvalInterval < 1) throw new ConfigurationException("eval_interval", $"must be at least 1, got {EvalInterval}.");
    }
}
