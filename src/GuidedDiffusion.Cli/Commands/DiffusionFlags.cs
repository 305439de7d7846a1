using GuidedDiffusion.Diffusion;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// The diffusion flags of the original's <c>diffusion_defaults()</c>, shared by every command that builds a
/// noise process, bound to <see cref="DiffusionConfig"/> (whose defaults they show).
/// </summary>
internal static class DiffusionFlags
{
    public static readonly FlagTable<DiffusionConfig> Table = new();

    public static readonly Flag<DiffusionConfig> LearnSigma = Table.Add("learn_sigma", "The diffusion model also predicts the variance (6 output channels).",
        d => d.LearnSigma, (d, v) => d with { LearnSigma = v });
    public static readonly Flag<DiffusionConfig> DiffusionSteps = Table.Add("diffusion_steps", "Steps T of the noise process.",
        d => d.DiffusionSteps, (d, v) => d with { DiffusionSteps = v });
    public static readonly Flag<DiffusionConfig> NoiseSchedule = Table.Add<NoiseSchedule, string>("noise_schedule", "Beta schedule: linear or cosine.",
        d => d.NoiseSchedule, (d, v) => d with { NoiseSchedule = v }, v => Spellings.Parse<NoiseSchedule>(v, "noise_schedule", "schedule"), schedule => schedule.Spelling());
    public static readonly Flag<DiffusionConfig> TimestepRespacing = Table.Add("timestep_respacing", "Respacing: '', N, a,b,c or ddimN.",
        d => d.TimestepRespacing, (d, v) => d with { TimestepRespacing = v ?? "" });
    public static readonly Flag<DiffusionConfig> UseKl = Table.Add("use_kl", "Train the diffusion model with the variational bound (image-train only).",
        d => d.UseKl, (d, v) => d with { UseKl = v });
    public static readonly Flag<DiffusionConfig> PredictXstart = Table.Add("predict_xstart", "The diffusion model predicts x0 instead of the noise.",
        d => d.PredictXstart, (d, v) => d with { PredictXstart = v });
    public static readonly Flag<DiffusionConfig> RescaleTimesteps = Table.Add("rescale_timesteps", "Models see t scaled by 1000/diffusion_steps (sampling).",
        d => d.RescaleTimesteps, (d, v) => d with { RescaleTimesteps = v });
    public static readonly Flag<DiffusionConfig> RescaleLearnedSigmas = Table.Add("rescale_learned_sigmas", "Scale the learned-sigma VLB term by T/1000 (image-train only).",
        d => d.RescaleLearnedSigmas, (d, v) => d with { RescaleLearnedSigmas = v });
}
