namespace GuidedDiffusion;

/// <summary>
/// A configuration value (a command-line flag or constructor argument) that cannot work. The message names the
/// flag, the value and what would be accepted; <see cref="Flag"/> carries the flag name for programmatic use.
/// </summary>
public sealed class ConfigurationException : ArgumentException
{
    /// <summary>Creates the exception for <paramref name="flag"/> (e.g. <c>classifier_width</c>).</summary>
    /// <param name="flag">The flag or argument name, as the original spells it.</param>
    /// <param name="message">What is wrong and what to do instead.</param>
    public ConfigurationException(string flag, string message) : base(message, flag)
    {
        Flag = flag;
    }

    /// <summary>The flag (or constructor argument) at fault, e.g. <c>classifier_attention_resolutions</c>.</summary>
    public string Flag { get; }
}
