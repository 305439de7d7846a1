using System.Collections;
using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace GuidedDiffusion;

/// <summary>
/// An immutable list setting of positive numbers (<c>channel_mult</c>, <c>attention_resolutions</c>): compared by
/// value, so the options records holding one stay value-equal, and spelled as the original's comma-separated text
/// (<c>1,2,2</c>) on the command line and in the sidecars. Write one in C# as a collection expression:
/// <c>ChannelMult = [1, 2, 2]</c>.
/// </summary>
/// <typeparam name="T">The element type (<see cref="int"/> or <see cref="double"/>).</typeparam>
[CollectionBuilder(typeof(SettingList), nameof(SettingList.Create))]
[JsonConverter(typeof(SettingListJsonConverter))]
public sealed class SettingList<T> : IReadOnlyList<T>, IEquatable<SettingList<T>> where T : INumber<T>
{
    private readonly T[] _values;

    internal SettingList(T[] values) => _values = values;

    /// <summary>The empty list.</summary>
    public static SettingList<T> Empty { get; } = new(Array.Empty<T>());

    /// <inheritdoc/>
    public int Count => _values.Length;

    /// <inheritdoc/>
    public T this[int index] => _values[index];

    /// <summary>
    /// Parses the comma-separated <paramref name="text"/> (spaces around values allowed; blank: the empty list), each
    /// value positive and finite.
    /// </summary>
    /// <param name="text">The text given.</param>
    /// <param name="setting">The setting named in an error, e.g. <c>channel_mult</c>.</param>
    /// <exception cref="ConfigurationException">A value that is not a number, is out of range or is not positive.</exception>
    public static SettingList<T> Parse(string? text, string setting)
    {
        if (string.IsNullOrWhiteSpace(text)) return Empty;
        var style = typeof(T) == typeof(int) ? NumberStyles.Integer : NumberStyles.Float;
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var values = new T[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            try
            {
                values[i] = T.Parse(parts[i], style, CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is FormatException or OverflowException)
            {
                throw new ConfigurationException(setting,
                    $"{SettingText.Ref(setting)} '{text}': '{parts[i]}' is {(e is FormatException ? "not a number" : "out of range")}.");
            }
        }
        var list = new SettingList<T>(values);
        list.CheckPositive(setting, text);
        return list;
    }

    /// <summary>Checks that every value is positive and finite (a list built in C# has not been through <see cref="Parse"/>).</summary>
    /// <param name="setting">The setting named in an error.</param>
    /// <param name="text">The text the list came from, quoted in the error (default: its spelling).</param>
    /// <exception cref="ConfigurationException">The first value that is not.</exception>
    public void CheckPositive(string setting, string? text = null)
    {
        foreach (var value in _values)
        {
            if (!(T.IsFinite(value) && value > T.Zero))
                throw new ConfigurationException(setting,
                    $"{SettingText.Ref(setting)} '{text ?? ToString()}': every value must be positive, got '{Spell(value)}'.");
        }
    }

    /// <summary>The original's spelling: the values joined by commas, e.g. <c>1,2,2</c> or <c>0.5,1</c> (empty for no values).</summary>
    public override string ToString() => string.Join(",", _values.Select(Spell));

    /// <inheritdoc/>
    public bool Equals(SettingList<T>? other) => other is not null && _values.AsSpan().SequenceEqual(other._values);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as SettingList<T>);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var value in _values) hash.Add(value);
        return hash.ToHashCode();
    }

    /// <inheritdoc/>
    public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)_values).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _values.GetEnumerator();

    private static string Spell(T value) => value.ToString(null, CultureInfo.InvariantCulture);
}

/// <summary>Builds <see cref="SettingList{T}"/> values (the target of collection expressions).</summary>
public static class SettingList
{
    /// <summary>A list of <paramref name="values"/> (not checked: <see cref="SettingList{T}.CheckPositive"/> does that where it is used).</summary>
    public static SettingList<T> Create<T>(ReadOnlySpan<T> values) where T : INumber<T> =>
        values.IsEmpty ? SettingList<T>.Empty : new SettingList<T>(values.ToArray());
}

/// <summary>Reads and writes a <see cref="SettingList{T}"/> as its comma-separated string, as the sidecars always have.</summary>
internal sealed class SettingListJsonConverter : JsonConverterFactory
{
    public override bool CanConvert(Type typeToConvert) =>
        typeToConvert.IsGenericType && typeToConvert.GetGenericTypeDefinition() == typeof(SettingList<>);

    public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        (JsonConverter)Activator.CreateInstance(typeof(Converter<>).MakeGenericType(typeToConvert.GetGenericArguments()[0]))!;

    private sealed class Converter<T> : JsonConverter<SettingList<T>> where T : INumber<T>
    {
        public override SettingList<T> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType != JsonTokenType.String) throw new JsonException("a list setting must be a comma-separated string, e.g. \"1,2,2\".");
            try
            {
                return SettingList<T>.Parse(reader.GetString(), "list");
            }
            catch (ConfigurationException e)
            {
                throw new JsonException(e.Message, e);
            }
        }

        public override void Write(Utf8JsonWriter writer, SettingList<T> value, JsonSerializerOptions options) =>
            writer.WriteStringValue(value.ToString());
    }
}
