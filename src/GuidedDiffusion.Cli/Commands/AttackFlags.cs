using System.CommandLine;
using GuidedDiffusion.Adversarial;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// The L2 PGD attack flags of Kawar, Ganz and Elad's classifier_rob_train.py (<c>--attack_eps</c>, <c>--attack_steps</c>)
/// plus ours (<c>--attack_step_size</c>, <c>--attack_eps_schedule</c>), bound to <see cref="L2PgdOptions"/>. For
/// classifier-train the attack is switched on by <c>--adversarial True</c>; for classifier-eval by an
/// <c>--attack_eps</c> above 0 (its default there is 0: no attack).
/// </summary>
internal static class AttackFlags
{
    /// <summary>The attack flags as typed: the switch (classifier-train) and the attack's settings.</summary>
    public sealed record Request
    {
        public bool Adversarial { get; init; }
        public L2PgdOptions Attack { get; init; } = new();
    }

    public static readonly FlagTable<Request> Table = new();

    public static readonly Flag<Request> Adversarial = Table.Add("adversarial", "Train on untargeted L2 PGD attacks of x_t (robust classifier guidance, Kawar et al. 2023); see --attack_*.",
        r => r.Adversarial, (r, v) => r with { Adversarial = v });
    public static readonly Flag<Request> Eps = Table.Add("attack_eps", "L2 radius of the PGD attack around x_t (pixels in [-1, 1]); classifier-train uses it with --adversarial, classifier-eval attacks when it is above 0 (0: no attack) and adds robust acc@1 per noise level.",
        r => r.Attack.Eps, (r, v) => r with { Attack = r.Attack with { Eps = v } });
    public static readonly Flag<Request> Steps = Table.Add("attack_steps", "PGD steps along the normalised input gradient (0: no attack steps).",
        r => r.Attack.Steps, (r, v) => r with { Attack = r.Attack with { Steps = v } });
    public static readonly Flag<Request> StepSize = Table.Add("attack_step_size", "Length of each attack step (default: attack_eps·0.5/3, the reference's).",
        r => r.Attack.StepSize, (r, v) => r with { Attack = r.Attack with { StepSize = v } });
    public static readonly Flag<Request> Schedule = Table.Add<AttackEpsSchedule, string>("attack_eps_schedule", "Attack radius per noise level: constant, or sqrt_alpha (radius and step × sqrt(ᾱ_t)).",
        r => r.Attack.EpsSchedule, (r, v) => r with { Attack = r.Attack with { EpsSchedule = v } },
        L2PgdOptions.ParseSchedule, s => s.Spelling());

    /// <summary>The flags on one command, and the attack they ask for.</summary>
    public sealed record Bound(FlagSet<Request> Flags, bool ForTraining)
    {
        /// <summary>The attack the flags ask for (validated), or null for none.</summary>
        /// <exception cref="ConfigurationException">Attack flags given without switching the attack on, or a value out of range.</exception>
        public L2PgdOptions? Options(ParseResult parse)
        {
            var request = Flags.Bind(parse);
            bool on = ForTraining ? request.Adversarial : request.Attack.Eps != 0;
            if (!on)
            {
                // In classifier-eval, --attack_eps 0 is itself the way to say "no attack".
                var typed = Flags.Options.FirstOrDefault(o => parse.WasGiven(o) && FlagOwners.Of(o) != Adversarial && (ForTraining || FlagOwners.Of(o) != Eps));
                if (typed is not null)
                    throw ForTraining
                        ? new ConfigurationException("adversarial", $"{typed.Name} only takes effect with --adversarial True.")
                        : new ConfigurationException("attack_eps", $"{typed.Name} needs an attack: give --attack_eps above 0.");
                return null;
            }
            request.Attack.Validate();
            return request.Attack;
        }
    }

    /// <summary>classifier-train's attack flags: <c>--adversarial</c> and the attack's, with the reference's defaults.</summary>
    public static Bound AddForTraining(Command command) => new(Table.AddTo(command, new Request()), ForTraining: true);

    /// <summary>classifier-eval's: the attack's flags, with no attack (radius 0) by default.</summary>
    public static Bound AddForEvaluation(Command command) =>
        new(Table.AddTo(command, new Request { Attack = new L2PgdOptions { Eps = 0 } }, include: f => f != Adversarial), ForTraining: false);
}
