namespace GuidedDiffusion;

/// <summary>
/// SplitMix64 (Steele, Lea and Flood, 2014): the golden-ratio increment and the output function that every seed
/// derivation here (per-sample data draws, per-step training seeds, evaluation noise seeds) is built from.
/// </summary>
internal static class SplitMix64
{
    /// <summary>2^64 / φ, the generator's increment.</summary>
    public const ulong Golden = 0x9E3779B97F4A7C15UL;

    /// <summary>The output function: a bijective 64-bit mix of the state <paramref name="z"/>.</summary>
    public static ulong Output(ulong z)
    {
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }

    /// <summary>One generator step from state <paramref name="z"/>: <see cref="Output"/>(z + <see cref="Golden"/>), a 64-bit hash of z.</summary>
    public static ulong Hash(ulong z) => Output(unchecked(z + Golden));
}
