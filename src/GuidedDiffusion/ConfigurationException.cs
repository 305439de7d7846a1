namespace GuidedDiffusion;

/// <summary>
/// A flag or configuration value that cannot work. The message names the flag, the value given and what
/// is allowed, so a user can fix the command line without reading code.
/// </summary>
public sealed class ConfigurationException : ArgumentException
{
    /// <summary>Creates the exception for <paramref name="flag"/> with a message saying what is allowed.</summary>
    public ConfigurationException(string flag, string message) : base($"--{flag}: {message}") => Flag = flag;

    /// <summary>The snake_case flag name (as the original's argparse spells it) that was rejected.</summary>
    public string Flag { get; }
}
