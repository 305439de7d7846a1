namespace GuidedDiffusion.Distributed;

/// <summary>Argument checks shared by the communicators, so both reject the same mistakes.</summary>
internal static class RankChecks
{
    public static void RequireValidRoot(int root, int worldSize)
    {
        if (root < 0 || root >= worldSize)
        {
            throw new ArgumentOutOfRangeException(nameof(root), root, $"The root rank must be in [0, {worldSize}).");
        }
    }
}
