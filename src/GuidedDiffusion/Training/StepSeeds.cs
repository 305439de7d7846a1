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
        ulong x = SplitMix64.Hash((ulong)seed ^ SplitMix64.Hash((ulong)step + SplitMix64.Golden * (ulong)purpose) ^ SplitMix64.Hash((ulong)rank + 0xD1B54A32D192ED03UL));
        return (long)(x & 0x7FFF_FFFF_FFFF_FFFFUL);
    }
}
