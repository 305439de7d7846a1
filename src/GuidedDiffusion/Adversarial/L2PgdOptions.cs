using System.Globalization;
using System.Text.Json.Serialization;

namespace GuidedDiffusion.Adversarial;

/// <summary>How the attack radius depends on the noise level t.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<AttackEpsSchedule>))]
public enum AttackEpsSchedule
{
    /// <summary>The same radius at every t (what Kawar, Ganz and Elad's classifier_rob_train.py uses).</summary>
    [JsonStringEnumMemberName("constant")]
    Constant,

    /// <summary>
    /// Radius and step size times sqrt(ᾱ_t): x_t carries the image scaled by sqrt(ᾱ_t), so this is a constant
    /// radius measured on the image rather than on x_t (the reference computes sqrt(ᾱ_t) but does not use it).
    /// </summary>
    [JsonStringEnumMemberName("sqrt_alpha")]
    SqrtAlpha,
}

/// <summary>
/// Settings of the untargeted L2 PGD attack on x_t (<see cref="L2PgdAttack"/>), with the defaults of Kawar, Ganz and
/// Elad's <c>classifier_rob_train.py</c>: 7 steps of size eps·0.5/3 inside a ball of radius 0.5, no random start.
/// Recorded in the checkpoint sidecar (under <c>training.adversarial</c>) when a classifier is trained on attacks.
/// </summary>
public sealed record L2PgdOptions
{
    /// <summary><c>--attack_eps</c>: L2 radius of the ball around the clean x_t (pixel range [-1, 1]). Default 0.5.</summary>
    public double Eps { get; init; } = 0.5;

    /// <summary><c>--attack_steps</c>: gradient steps; 0 leaves the input unchanged. Default 7.</summary>
    public int Steps { get; init; } = 7;

    /// <summary><c>--attack_step_size</c>: L2 length of each step; null means the reference's eps·0.5/3.</summary>
    public double? StepSize { get; init; }

    /// <summary><c>--attack_eps_schedule</c>: constant radius, or scaled by sqrt(ᾱ_t). Default constant.</summary>
    public AttackEpsSchedule EpsSchedule { get; init; } = AttackEpsSchedule.Constant;

    /// <summary>The step length used: <see cref="StepSize"/>, else eps·0.5/3 (the reference's rule: 7 steps of it reach 1.17·eps).</summary>
    public double ResolvedStepSize() => StepSize ?? Eps * 0.5 / 3;

    /// <summary>The names <c>--attack_eps_schedule</c> accepts, in enum order.</summary>
    public static IReadOnlyList<string> ScheduleNames => Spellings.Of<AttackEpsSchedule>();

    /// <summary>Parses <c>--attack_eps_schedule</c>.</summary>
    /// <exception cref="ConfigurationException">The name is not one of <see cref="ScheduleNames"/>.</exception>
    public static AttackEpsSchedule ParseSchedule(string name) => Spellings.Parse<AttackEpsSchedule>(name, "attack_eps_schedule", "schedule");

    /// <summary>Rejects values that cannot work, naming the flag. Call before any work.</summary>
    public void Validate()
    {
        if (!(Eps > 0) || double.IsInfinity(Eps))
            throw new ConfigurationException("attack_eps", $"must be a positive finite L2 radius, got {Eps.ToString(CultureInfo.InvariantCulture)}.");
        if (Steps < 0) throw new ConfigurationException("attack_steps", $"must be ≥ 0 (0: no attack), got {Steps}.");
        if (StepSize is { } size && (!(size > 0) || double.IsInfinity(size)))
            throw new ConfigurationException("attack_step_size", $"must be a positive finite step length, got {size.ToString(CultureInfo.InvariantCulture)}.");
        if (!Enum.IsDefined(EpsSchedule))
            throw new ConfigurationException("attack_eps_schedule", $"unknown schedule {(int)EpsSchedule}; allowed: {string.Join(", ", ScheduleNames)}.");
    }

    /// <summary>"on attacks (L2 PGD: …)" for <paramref name="options"/>, or "without attacks" for null: how a run trains.</summary>
    public static string Training(L2PgdOptions? options) => options is null ? "without attacks" : $"on attacks ({options.Describe()})";

    /// <summary>One line for logs and tables, e.g. <c>L2 PGD: eps 0.5, 7 steps of 0.0833, constant radius</c>.</summary>
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"L2 PGD: eps {Eps:0.####}, {Steps} steps of {ResolvedStepSize():0.####}, {(EpsSchedule == AttackEpsSchedule.Constant ? "constant radius" : "radius × sqrt(ᾱ_t)")}");
}
