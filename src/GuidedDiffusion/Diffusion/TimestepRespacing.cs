using System.Globalization;

namespace GuidedDiffusion.Diffusion;

/// <summary>
/// <c>--timestep_respacing</c>: which steps of the base process to keep (the original's
/// <c>space_timesteps</c>). "" keeps every step; "ddimN" keeps range(0, T, s) for the first integer stride s
/// giving exactly N steps; "a,b,c" splits T into equal sections and takes evenly spaced steps from each.
/// </summary>
public static class TimestepRespacing
{
    /// <summary>The kept steps of the base process, sorted ascending (the spaced process's timestep_map).</summary>
    public static int[] Parse(string spec, int steps)
    {
        spec = spec.Trim();
        if (spec.Length == 0) return Enumerable.Range(0, steps).ToArray();
        if (spec.StartsWith("ddim", StringComparison.Ordinal)) return Ddim(spec, steps);

        var parts = spec.Split(',');
        var counts = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out counts[i]) || counts[i] < 0)
                throw new ConfigurationException("timestep_respacing",
                    $"'{spec}' is not a respacing; allowed: empty, a step count like 250, section counts like 10,15,20, or ddimN like ddim25.");
        }
        return Sections(counts, steps);
    }

    private static int[] Ddim(string spec, int steps)
    {
        if (!int.TryParse(spec.AsSpan(4), NumberStyles.Integer, CultureInfo.InvariantCulture, out int desired))
            throw new ConfigurationException("timestep_respacing", $"'{spec}': ddim must be followed by a step count, like ddim25.");
        for (int stride = 1; stride < steps; stride++)
        {
            if ((steps + stride - 1) / stride == desired)
                return Enumerable.Range(0, desired).Select(k => k * stride).ToArray();
        }
        // The original's message prints T, not the requested count; kept verbatim so logs compare.
        throw new ConfigurationException("timestep_respacing", $"cannot create exactly {steps} steps with an integer stride");
    }

    private static int[] Sections(int[] counts, int steps)
    {
        int sizePer = steps / counts.Length, extra = steps % counts.Length, start = 0;
        var kept = new SortedSet<int>();
        for (int i = 0; i < counts.Length; i++)
        {
            int size = sizePer + (i < extra ? 1 : 0);
            if (size < counts[i])
                throw new ConfigurationException("timestep_respacing", $"cannot divide section of {size} steps into {counts[i]}");
            double stride = counts[i] <= 1 ? 1 : (double)(size - 1) / (counts[i] - 1);
            double cur = 0.0;
            for (int k = 0; k < counts[i]; k++)
            {
                // Python's round() is round-half-to-even, as is Math.Round's default.
                kept.Add(start + (int)Math.Round(cur));
                cur += stride;
            }
            start += size;
        }
        return kept.ToArray();
    }
}
