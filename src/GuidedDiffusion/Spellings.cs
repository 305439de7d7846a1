using System.Reflection;
using System.Text.Json.Serialization;

namespace GuidedDiffusion;

/// <summary>
/// The original's spellings of an enum setting (<c>fp16</c>, <c>spatial_v2</c>, <c>loss-second-moment</c>): each
/// member's <see cref="JsonStringEnumMemberNameAttribute"/>, so the sidecars, the command line, help and error
/// messages use one declaration.
/// </summary>
public static class Spellings
{
    /// <summary>The spellings of <typeparamref name="TEnum"/>'s members, in declaration order.</summary>
    public static IReadOnlyList<string> Of<TEnum>() where TEnum : struct, Enum => Cache<TEnum>.Names;

    /// <summary>The spelling of <paramref name="value"/>, e.g. <c>fp16</c>.</summary>
    public static string Spelling<TEnum>(this TEnum value) where TEnum : struct, Enum =>
        Cache<TEnum>.Names[Array.IndexOf(Cache<TEnum>.Values, value) is >= 0 and var i ? i : throw new ArgumentOutOfRangeException(nameof(value), value, null)];

    /// <summary>The member spelled <paramref name="text"/> (exactly, as argparse's choices).</summary>
    /// <param name="text">The text given.</param>
    /// <param name="setting">The setting to name in the error, e.g. <c>precision</c>.</param>
    /// <param name="noun">What a value is called in the error, e.g. "precision" in "unknown precision 'fp8'".</param>
    /// <exception cref="ConfigurationException">An unknown spelling; the message lists the allowed ones.</exception>
    public static TEnum Parse<TEnum>(string? text, string setting, string noun) where TEnum : struct, Enum
    {
        int index = Array.IndexOf(Cache<TEnum>.Names, text);
        return index >= 0 ? Cache<TEnum>.Values[index]
            : throw new ConfigurationException(setting, $"unknown {noun} '{text}'; allowed: {string.Join(", ", Cache<TEnum>.Names)}.");
    }

    private static class Cache<TEnum> where TEnum : struct, Enum
    {
        public static readonly TEnum[] Values = Enum.GetValues<TEnum>();

        public static readonly string[] Names = Values
            .Select(v => typeof(TEnum).GetField(v.ToString())!.GetCustomAttribute<JsonStringEnumMemberNameAttribute>()?.Name
                ?? throw new InvalidOperationException($"{typeof(TEnum).Name}.{v} has no spelling (JsonStringEnumMemberName)."))
            .ToArray();
    }
}
