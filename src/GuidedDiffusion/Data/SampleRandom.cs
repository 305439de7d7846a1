namespace GuidedDiffusion.Data;

/// <summary>
/// A small deterministic generator (SplitMix64) seeded from (seed, epoch, index), so that each sample's
/// augmentation draws do not depend on which worker thread handles it or when.
/// </summary>
public sealed class SampleRandom
{
    // Distinct salts keep the shuffle stream and the per-sample streams apart.
    private const ulong SampleSalt = 0x5EED_0F_5A_4D_91E5UL;
    private const ulong ShuffleSalt = 0x5EED_0F_5B_0FF1_E5UL;

    private ulong _state;

    private SampleRandom(ulong state) => _state = state;

    /// <summary>The generator for sample <paramref name="index"/> (an index into the source) in <paramref name="epoch"/>.</summary>
    public static SampleRandom ForSample(long seed, long epoch, long index) => new(Derive(SampleSalt, seed, epoch, index));

    /// <summary>The generator of the file order of <paramref name="epoch"/>.</summary>
    public static SampleRandom ForShuffle(long seed, long epoch) => new(Derive(ShuffleSalt, seed, epoch, 0));

    /// <summary>Next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        _state = unchecked(_state + SplitMix64.Golden);
        return SplitMix64.Output(_state);
    }

    /// <summary>Python's <c>random.randrange(start, stop)</c> semantics: uniform in [start, stop), unbiased.</summary>
    public int RandRange(int start, int stop)
    {
        if (stop <= start) throw new ArgumentOutOfRangeException(nameof(stop), $"Empty range [{start}, {stop}).");
        ulong bound = (ulong)((long)stop - start);
        // Lemire's multiply-shift with rejection of the biased low products.
        ulong threshold = (0UL - bound) % bound;
        while (true)
        {
            ulong high = Math.BigMul(NextUInt64(), bound, out ulong low);
            if (low >= threshold) return (int)(start + (long)high);
        }
    }

    /// <summary>Uniform double in [0, 1) (Python's <c>random.random()</c> semantics).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Fisher–Yates shuffle of <paramref name="items"/> in place.</summary>
    public void Shuffle(int[] items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = RandRange(0, i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    private static ulong Derive(ulong salt, long seed, long epoch, long index)
    {
        ulong h = SplitMix64.Output(salt ^ (ulong)seed);
        h = SplitMix64.Output(unchecked(h + SplitMix64.Golden + (ulong)epoch));
        h = SplitMix64.Output(unchecked(h + 2 * SplitMix64.Golden + (ulong)index));
        return h;
    }
}
