namespace GuidedDiffusion.Data;

/// <summary>A dataset cannot be used as given: no images, one class, an unknown validation class, a malformed IDX file…
/// The message names the folder or file and says what was found.</summary>
public sealed class DatasetException : Exception
{
    /// <summary>Creates the exception.</summary>
    public DatasetException(string message, Exception? inner = null) : base(message, inner) { }
}
