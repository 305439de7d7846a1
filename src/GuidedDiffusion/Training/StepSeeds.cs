namespace GuidedDiffusion.Training;

/// <summary>
/// Seeds derived from (run seed, step, rank, purpose) with SplitMix64, so every step's random draws
/// (timesteps, noise, dropout) depend only on its index: a resumed run repeats an uninterrupted one exactly.
/// </summary>
public static class StepSeeds
{
    /// <summary>What a seed is used for; each purpose gets an independent stream.</summary>
    public enum Purpose : ulong
    {
        /// <summary>Training-step timesteps, noise and dropout.</summary>
        Train = 1,
        /// <summary>Validation timesteps and noise.</summary>
        Validation = 2,
        /// <summary>Weight initialisation.</summary>
        Init = 3,
    }

    /// <summary>The seed for <paramref name="purpose"/> at global step <paramref name="step"/> on <paramref name="rank"/>.</summary>
    public static long For(long seed, long step, int rank, Purpose purpose)
    {
        ulong x = Mix((ulong)seed ^ Mix((ulong)step + 0x9E3779B97F4A7C15UL * (ulong)purpose) ^ Mix((ulong)rank + 0xD1B54A32D192ED03UL));
        return (long)(x & 0x7FFF_FFFF_FFFF_FFFFUL);
    }

    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
