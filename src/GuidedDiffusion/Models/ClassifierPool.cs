using System.Text.Json.Serialization;

namespace GuidedDiffusion.Models;

/// <summary>The classifier head (<c>classifier_pool</c>), spelled as the original's flag values.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ClassifierPool>))]
public enum ClassifierPool
{
    /// <summary><c>adaptive</c>: GroupNorm, SiLU, global average pool, zero-initialised 1×1 conv.</summary>
    [JsonStringEnumMemberName("adaptive")]
    Adaptive,

    /// <summary><c>attention</c>: GroupNorm, SiLU, <see cref="AttentionPool2d"/> (the original's default).</summary>
    [JsonStringEnumMemberName("attention")]
    Attention,

    /// <summary><c>spatial</c>: spatial means of every trunk block, concatenated, then Linear(2048), ReLU, Linear.</summary>
    [JsonStringEnumMemberName("spatial")]
    Spatial,

    /// <summary><c>spatial_v2</c>: like spatial, with GroupNorm(32, 2048) and SiLU instead of ReLU.</summary>
    [JsonStringEnumMemberName("spatial_v2")]
    SpatialV2,
}

/// <summary>Converts <see cref="ClassifierPool"/> to and from the original's flag values.</summary>
public static class ClassifierPools
{
    /// <summary>The flag values the original accepts, in its order.</summary>
    public static IReadOnlyList<string> FlagValues => Spellings.Of<ClassifierPool>();

    /// <summary>Parses a <c>classifier_pool</c> value; throws <see cref="ConfigurationException"/> listing the
    /// allowed values otherwise.</summary>
    /// <param name="value">The flag value, e.g. <c>attention</c>.</param>
    /// <param name="flag">The flag name to report.</param>
    public static ClassifierPool Parse(string? value, string flag = "classifier_pool") => Spellings.Parse<ClassifierPool>(value, flag, "pooling");

    /// <summary>The flag value of <paramref name="pool"/>, e.g. <c>spatial_v2</c>.</summary>
    public static string ToFlag(this ClassifierPool pool) => pool.Spelling();
}
