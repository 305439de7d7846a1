namespace GuidedDiffusion.Diffusion;

/// <summary>What the diffusion model's first <c>C</c> output channels predict (the original's <c>ModelMeanType</c>;
/// <c>PREVIOUS_X</c> is not supported: no released model uses it).</summary>
public enum ModelMeanType
{
    /// <summary>The noise ε (the default; <c>predict_xstart=False</c>).</summary>
    Epsilon,

    /// <summary>The clean image x₀ (<c>predict_xstart=True</c>).</summary>
    StartX,
}

/// <summary>How the reverse-process variance is obtained (the original's <c>ModelVarianceType</c>).</summary>
public enum ModelVarianceType
{
    /// <summary>Fixed β̃_t, the posterior variance (with its log clipped at t = 0): <c>sigma_small</c>.</summary>
    FixedSmall,

    /// <summary>Fixed β_t (with the posterior variance at t = 0): what <c>learn_sigma=False</c> gives.</summary>
    FixedLarge,

    /// <summary>The model's extra C channels v interpolate the log variance between β̃_t and β_t:
    /// frac = (v + 1)/2, log σ² = frac·log β_t + (1 − frac)·log β̃_t (<c>learn_sigma=True</c>).</summary>
    LearnedRange,

    /// <summary>The model's extra channels are the log variance itself (the original's <c>LEARNED</c>).</summary>
    Learned,
}
