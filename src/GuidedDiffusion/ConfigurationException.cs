namespace GuidedDiffusion;

/// <summary>
/// A setting or configuration value that cannot work. The message names the setting (the original's snake_case
/// name, e.g. <c>batch_size</c>), the value given and what is allowed; a front end spells the names its own way
/// (the CLI as <c>--batch_size</c>, through <see cref="SettingText.MessageOf"/>).
/// </summary>
public sealed class ConfigurationException : ArgumentException
{
    /// <summary>Creates the exception for <paramref name="setting"/> with a message saying what is allowed.</summary>
    /// <param name="setting">The setting rejected.</param>
    /// <param name="message">What is wrong and what is allowed; other settings it names are marked with <see cref="SettingText.Ref"/>.</param>
    public ConfigurationException(string setting, string message) : base(SettingText.Plain(Marked(setting, message)))
    {
        Setting = setting;
        this.WithMarkedMessage(Marked(setting, message));
    }

    /// <summary>The snake_case name of the setting that was rejected (the original's argparse flag name).</summary>
    public string Setting { get; }

    // A message that already starts with the setting's name is not prefixed with it again.
    private static string Marked(string setting, string message) =>
        message.StartsWith(SettingText.Ref(setting), StringComparison.Ordinal) ? message : $"{SettingText.Ref(setting)}: {message}";
}
