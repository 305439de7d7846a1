using System.CommandLine;
using GuidedDiffusion.Adversarial;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// The L2 PGD attack flags of Kawar, Ganz and Elad's classifier_rob_train.py (<c>--attack_eps</c>, <c>--attack_steps</c>)
/// plus ours (<c>--attack_step_size</c>, <c>--attack_eps_schedule</c>), bound to <see cref="L2PgdOptions"/>. For
/// classifier-train the attack is switched on by <c>--adversarial True</c>; for classifier-eval by an
/// <c>--attack_eps</c> above 0 (its default there is 0: no attack).
/// </summary>
internal sealed class AttackFlags
{
    private static readonly L2PgdOptions D = new();
    private readonly Option<bool>? _adversarial;
    private readonly Option<double> _eps;
    private readonly Option<int> _steps;
    private readonly Option<double?> _stepSize;
    private readonly Option<string> _schedule;

    /// <summary>The flags of classifier-train (<paramref name="forTraining"/>) or of classifier-eval.</summary>
    public AttackFlags(bool forTraining)
    {
        if (forTraining)
            _adversarial = Flags.Create("adversarial", false, "Train on untargeted L2 PGD attacks of x_t (robust classifier guidance, Kawar et al. 2023); see --attack_*.");
        _eps = forTraining
            ? Flags.Create("attack_eps", D.Eps, "With --adversarial: L2 radius of the attack around x_t (pixels in [-1, 1]).")
            : Flags.Create("attack_eps", 0.0, "L2 radius of a PGD attack on x_t; above 0 adds robust acc@1 per noise level (0: no attack).");
        _steps = Flags.Create("attack_steps", D.Steps, "PGD steps along the normalised input gradient (0: no attack steps).");
        _stepSize = Flags.Create<double?>("attack_step_size", null, "Length of each attack step (default: attack_eps·0.5/3, the reference's).");
        _schedule = Flags.Create("attack_eps_schedule", "constant", "Attack radius per noise level: constant, or sqrt_alpha (radius and step × sqrt(ᾱ_t)).");
    }

    private IEnumerable<Option> Tuning => new Option[] { _eps, _steps, _stepSize, _schedule };

    /// <summary>Adds the flags to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        if (_adversarial is not null) command.Options.Add(_adversarial);
        foreach (var option in Tuning) command.Options.Add(option);
    }

    /// <summary>The attack the flags ask for (validated), or null for none.</summary>
    /// <exception cref="ConfigurationException">Attack flags given without switching the attack on, or a value out of range.</exception>
    public L2PgdOptions? Options(ParseResult parse)
    {
        bool on = _adversarial is not null ? parse.GetValue(_adversarial) : parse.GetValue(_eps) != 0;
        if (!on)
        {
            // In classifier-eval, --attack_eps 0 is itself the way to say "no attack".
            var typed = Tuning.FirstOrDefault(o => parse.WasGiven(o) && (_adversarial is not null || o != _eps));
            if (typed is not null)
                throw _adversarial is not null
                    ? new ConfigurationException("adversarial", $"{typed.Name} only takes effect with --adversarial True.")
                    : new ConfigurationException("attack_eps", $"{typed.Name} needs an attack: give --attack_eps above 0.");
            return null;
        }
        var options = new L2PgdOptions
        {
            Eps = parse.GetValue(_eps),
            Steps = parse.GetValue(_steps),
            StepSize = parse.GetValue(_stepSize),
            EpsSchedule = L2PgdOptions.ParseSchedule(parse.GetValue(_schedule) ?? ""),
        };
        options.Validate();
        return options;
    }
}
