using System.Text.Json.Serialization;

namespace GuidedDiffusion.Diffusion.Solvers;

/// <summary>Which fast ODE solver <see cref="SolverOptions"/> selects (the reference implementations' names).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SolverKind>))]
public enum SolverKind
{
    /// <summary><c>dpm_solver</c>: DPM-Solver (Lu et al. 2022), on the noise prediction ε.</summary>
    [JsonStringEnumMemberName("dpm_solver")]
    DpmSolver,

    /// <summary><c>dpm_solver++</c>: DPM-Solver++ (Lu et al. 2022), on the data prediction x₀ (2M, 3M, 2S).</summary>
    [JsonStringEnumMemberName("dpm_solver++")]
    DpmSolverPlusPlus,

    /// <summary><c>unipc</c>: UniPC (Zhao et al. 2023), a multistep predictor with a unified corrector.</summary>
    [JsonStringEnumMemberName("unipc")]
    UniPC,
}

/// <summary>Multistep or singlestep updates (<c>method</c> of DPM-Solver's <c>sample</c>; UniPC is multistep only).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SolverMethod>))]
public enum SolverMethod
{
    /// <summary><c>multistep</c>: each step reuses the model outputs of the previous ones (one evaluation per step).</summary>
    [JsonStringEnumMemberName("multistep")]
    Multistep,

    /// <summary><c>singlestep</c>: each outer step of order k evaluates the model k times at intermediate times.</summary>
    [JsonStringEnumMemberName("singlestep")]
    Singlestep,
}

/// <summary>How the solver's times between t_T = 1 and t_0 = 1/N are spaced (<c>skip_type</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SkipType>))]
public enum SkipType
{
    /// <summary><c>time_uniform</c>: evenly in t (the reference's recommendation for pixel-space models).</summary>
    [JsonStringEnumMemberName("time_uniform")]
    TimeUniform,

    /// <summary><c>logSNR</c>: evenly in λ = log(α/σ).</summary>
    [JsonStringEnumMemberName("logSNR")]
    LogSnr,

    /// <summary><c>time_quadratic</c>: evenly in √t, then squared (denser near t_0).</summary>
    [JsonStringEnumMemberName("time_quadratic")]
    TimeQuadratic,
}

/// <summary>UniPC's B(h) (<c>variant</c>): bh1 is B(h) = h, bh2 is B(h) = eʰ − 1.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<UniPCVariant>))]
public enum UniPCVariant
{
    /// <summary><c>bh1</c>: B(h) = h (the reference recommends it for few steps, unconditional).</summary>
    [JsonStringEnumMemberName("bh1")]
    Bh1,

    /// <summary><c>bh2</c>: B(h) = eʰ − 1 (the reference recommends it for guided sampling).</summary>
    [JsonStringEnumMemberName("bh2")]
    Bh2,
}

/// <summary>
/// The settings of <see cref="DpmSolver"/> and <see cref="UniPC"/>, with the reference implementations' defaults
/// (DPM-Solver's <c>sample(steps=20, order=2, skip_type='time_uniform', method='multistep', lower_order_final=True)</c>,
/// dynamic thresholding with ratio 0.995 and max value 1). The solvers integrate from t_T = 1 to t_0 = 1/N.
/// </summary>
public sealed record SolverOptions
{
    /// <summary>The solver. Default DPM-Solver++.</summary>
    public SolverKind Kind { get; init; } = SolverKind.DpmSolverPlusPlus;
    /// <summary>Solver order 1, 2 or 3 (<c>solver_order</c>). Default 2.</summary>
    public int Order { get; init; } = 2;
    /// <summary>Number of steps; multistep solvers and UniPC evaluate the model once per step (<c>steps</c>). Default 20.</summary>
    public int Steps { get; init; } = 20;
    /// <summary>Multistep or singlestep (DPM-Solver and DPM-Solver++ only). Default multistep.</summary>
    public SolverMethod Method { get; init; } = SolverMethod.Multistep;
    /// <summary>Time-step spacing. Default time_uniform.</summary>
    public SkipType SkipType { get; init; } = SkipType.TimeUniform;
    /// <summary>
    /// Lower the order of the last steps (<c>lower_order_final</c>). DPM-Solver's multistep method does so only when
    /// <see cref="Steps"/> &lt; 10; UniPC always does. Default true.
    /// </summary>
    public bool LowerOrderFinal { get; init; } = true;
    /// <summary>Dynamic thresholding of each x₀ prediction (Saharia et al.); data-prediction solvers only. Default false.</summary>
    public bool Thresholding { get; init; }
    /// <summary>The quantile of |x₀| per sample that dynamic thresholding clips to. Default 0.995.</summary>
    public double ThresholdingRatio { get; init; } = 0.995;
    /// <summary>The smallest clipping value of dynamic thresholding. Default 1.</summary>
    public double ThresholdingMaxValue { get; init; } = 1.0;
    /// <summary>UniPC's B(h). Default bh2 (the reference's choice for guided sampling).</summary>
    public UniPCVariant Variant { get; init; } = UniPCVariant.Bh2;
    /// <summary>UniPC on the data prediction x₀ (true, the reference's default) or on ε (false).</summary>
    public bool UniPCPredictX0 { get; init; } = true;

    /// <summary>Whether the solver works on x₀ predictions (where thresholding applies).</summary>
    public bool PredictsData => Kind == SolverKind.DpmSolverPlusPlus || (Kind == SolverKind.UniPC && UniPCPredictX0);

    /// <summary>Model evaluations one sample costs: <see cref="Steps"/> for every method here.</summary>
    public int ModelEvaluations => Steps;

    /// <summary>Checks the settings, naming the flag of the first bad one.</summary>
    /// <exception cref="ConfigurationException">A setting is out of range or does not fit the solver.</exception>
    public void Validate()
    {
        if (Order is < 1 or > 3) throw new ConfigurationException("solver_order", $"must be 1, 2 or 3, got {Order}.");
        if (Steps < 1) throw new ConfigurationException("steps", $"must be positive, got {Steps}.");
        if (Method == SolverMethod.Multistep && Steps < Order)
            throw new ConfigurationException("steps", $"a multistep solver of order {Order} needs at least {Order} steps, got {Steps}.");
        if (Kind == SolverKind.UniPC && Method != SolverMethod.Multistep)
            throw new ConfigurationException("solver_method", $"UniPC is multistep only; use {SettingText.Ref("solver_method")} multistep.");
        if (Thresholding && !PredictsData)
            throw new ConfigurationException("thresholding", "dynamic thresholding clips x0 predictions: it needs dpm_solver++ or unipc with data prediction.");
        if (!(ThresholdingRatio > 0 && ThresholdingRatio <= 1))
            throw new ConfigurationException("thresholding_ratio", $"must be in (0, 1], got {ThresholdingRatio}.");
        if (!(ThresholdingMaxValue > 0) || !double.IsFinite(ThresholdingMaxValue))
            throw new ConfigurationException("thresholding_max_value", $"must be a positive number, got {ThresholdingMaxValue}.");
    }
}
