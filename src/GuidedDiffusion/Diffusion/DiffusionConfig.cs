namespace GuidedDiffusion.Diffusion;

/// <summary>
/// The diffusion flags of the original's <c>create_gaussian_diffusion</c>, with its defaults. The classifier
/// trainer only uses the schedule and respacing; the other flags are accepted (so the original's command
/// lines paste in unchanged) and matter for sampling.
/// </summary>
public sealed record DiffusionConfig
{
    /// <summary><c>--diffusion_steps</c>: number of steps T of the base process. Default 1000.</summary>
    public int DiffusionSteps { get; init; } = 1000;

    /// <summary><c>--noise_schedule</c>: <c>linear</c> or <c>cosine</c>. Default linear.</summary>
    public NoiseSchedule NoiseSchedule { get; init; } = NoiseSchedule.Linear;

    /// <summary><c>--timestep_respacing</c>: "" (all steps), "N", "a,b,c" or "ddimN". Default "".</summary>
    public string TimestepRespacing { get; init; } = "";

    /// <summary><c>--learn_sigma</c>: the diffusion model also predicts the variance. Default false.</summary>
    public bool LearnSigma { get; init; }

    /// <summary><c>--use_kl</c>: train the diffusion model with the variational bound. Default false.</summary>
    public bool UseKl { get; init; }

    /// <summary><c>--predict_xstart</c>: the diffusion model predicts x0 instead of ε. Default false.</summary>
    public bool PredictXstart { get; init; }

    /// <summary><c>--rescale_timesteps</c>: models see t scaled to the 0..1000 range. Default false.</summary>
    public bool RescaleTimesteps { get; init; }

    /// <summary><c>--rescale_learned_sigmas</c>: rescaled MSE loss for learned sigmas. Default false.</summary>
    public bool RescaleLearnedSigmas { get; init; }

    /// <summary>Builds the (always spaced) process the original's trainer gets for these flags.</summary>
    public GaussianDiffusion Build()
    {
        if (DiffusionSteps < 1)
            throw new ConfigurationException("diffusion_steps", $"must be a positive number of steps, got {DiffusionSteps}.");
        var raw = BetaSchedule.Named(NoiseSchedule, DiffusionSteps);
        var kept = global::GuidedDiffusion.Diffusion.TimestepRespacing.Parse(TimestepRespacing, DiffusionSteps);
        return GaussianDiffusion.Spaced(raw, kept, RescaleTimesteps);
    }
}
