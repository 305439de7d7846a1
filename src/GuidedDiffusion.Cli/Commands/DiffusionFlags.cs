using System.CommandLine;
using GuidedDiffusion.Diffusion;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// The diffusion flags of the original's <c>diffusion_defaults()</c>, shared by every command that builds a
/// noise process, bound to <see cref="DiffusionConfig"/> (whose defaults they show).
/// </summary>
internal sealed class DiffusionFlags
{
    private static readonly DiffusionConfig D = new();

    public Option<bool> LearnSigma { get; } = Flags.Create("learn_sigma", D.LearnSigma, "The diffusion model also predicts the variance (6 output channels).");
    public Option<int> DiffusionSteps { get; } = Flags.Create("diffusion_steps", D.DiffusionSteps, "Steps T of the noise process.");
    public Option<string> NoiseSchedule { get; } = Flags.Create("noise_schedule", D.NoiseSchedule, "Beta schedule: linear or cosine.");
    public Option<string> TimestepRespacing { get; } = Flags.Create("timestep_respacing", D.TimestepRespacing, "Respacing: '', N, a,b,c or ddimN.");
    public Option<bool> UseKl { get; } = Flags.Create("use_kl", D.UseKl, "Train the diffusion model with the variational bound (image-train only).");
    public Option<bool> PredictXstart { get; } = Flags.Create("predict_xstart", D.PredictXstart, "The diffusion model predicts x0 instead of the noise.");
    public Option<bool> RescaleTimesteps { get; } = Flags.Create("rescale_timesteps", D.RescaleTimesteps, "Models see t scaled by 1000/diffusion_steps (sampling).");
    public Option<bool> RescaleLearnedSigmas { get; } = Flags.Create("rescale_learned_sigmas", D.RescaleLearnedSigmas, "Scale the learned-sigma VLB term by T/1000 (image-train only).");

    public IEnumerable<Option> All => new Option[]
    {
        LearnSigma, DiffusionSteps, NoiseSchedule, TimestepRespacing, UseKl, PredictXstart, RescaleTimesteps, RescaleLearnedSigmas,
    };

    public DiffusionConfig Diffusion(ParseResult p) => new()
    {
        LearnSigma = p.GetValue(LearnSigma),
        DiffusionSteps = p.GetValue(DiffusionSteps),
        NoiseSchedule = p.GetValue(NoiseSchedule) ?? "",
        TimestepRespacing = p.GetValue(TimestepRespacing) ?? "",
        UseKl = p.GetValue(UseKl),
        PredictXstart = p.GetValue(PredictXstart),
        RescaleTimesteps = p.GetValue(RescaleTimesteps),
        RescaleLearnedSigmas = p.GetValue(RescaleLearnedSigmas),
    };
}
