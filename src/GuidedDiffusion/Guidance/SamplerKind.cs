using System.Text.Json.Serialization;
using GuidedDiffusion.Diffusion.Solvers;

namespace GuidedDiffusion.Guidance;

/// <summary>How <c>classifier-sample</c> draws its images (<c>--sampler</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SamplerKind>))]
public enum SamplerKind
{
    /// <summary><c>ancestral</c>: the original's p_sample loop over the (respaced) steps; guidance shifts the mean.</summary>
    [JsonStringEnumMemberName("ancestral")]
    Ancestral,

    /// <summary><c>ddim</c>: the original's DDIM loop (the same as <c>--use_ddim True</c>); guidance through the score.</summary>
    [JsonStringEnumMemberName("ddim")]
    Ddim,

    /// <summary><c>dpm_solver</c>: <see cref="DpmSolver"/> on ε.</summary>
    [JsonStringEnumMemberName("dpm_solver")]
    DpmSolver,

    /// <summary><c>dpm_solver++</c>: <see cref="DpmSolver"/> on x₀ (2M, 3M, 2S).</summary>
    [JsonStringEnumMemberName("dpm_solver++")]
    DpmSolverPlusPlus,

    /// <summary><c>unipc</c>: <see cref="UniPC"/>.</summary>
    [JsonStringEnumMemberName("unipc")]
    UniPC,
}

/// <summary>Helpers for <see cref="SamplerKind"/>.</summary>
public static class SamplerKinds
{
    /// <summary>Parses <c>--sampler</c>; the error lists the allowed values.</summary>
    /// <param name="text">The flag value.</param>
    /// <exception cref="ConfigurationException">An unknown sampler.</exception>
    public static SamplerKind Parse(string? text) => Spellings.Parse<SamplerKind>(text, "sampler", "sampler");

    /// <summary>The solver a fast sampler runs, or null for ancestral and DDIM.</summary>
    public static SolverKind? Solver(this SamplerKind kind) => kind switch
    {
        SamplerKind.DpmSolver => SolverKind.DpmSolver,
        SamplerKind.DpmSolverPlusPlus => SolverKind.DpmSolverPlusPlus,
        SamplerKind.UniPC => SolverKind.UniPC,
        _ => null,
    };
}
