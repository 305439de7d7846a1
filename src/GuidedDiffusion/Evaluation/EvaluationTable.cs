using System.Globalization;
using System.Text;

namespace GuidedDiffusion.Evaluation;

/// <summary>The short text table of an <see cref="EvaluationReport"/>: one row per timestep.</summary>
public static class EvaluationTable
{
    /// <summary>
    /// Columns t, loss, acc@1, acc@5 (“-” below 5 classes), ECE and grad norm (“-” when not computed), fixed-width,
    /// followed by a line saying what was evaluated. A report with an attack has robust acc@1 next to acc@1, the mean
    /// size of the successful perturbations last, and a line describing the attack.
    /// </summary>
    public static string Format(EvaluationReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        bool attacked = report.Attack is not null;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{"t",6}  {"loss",8}  {"acc@1",7}  {(attacked ? $"{"rob@1",7}  " : "")}{"acc@5",7}  {"ECE",7}  {"grad norm",10}");
        sb.Append(attacked ? $"  {"attack L2",9}\n" : "\n");
        foreach (var level in report.Levels)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{level.Timestep,6}  {F(level.Loss, "0.0000"),8}  {F(level.Acc1, "0.0000"),7}  ");
            if (attacked) sb.Append(CultureInfo.InvariantCulture, $"{Optional(level.RobustAcc1),7}  ");
            sb.Append(CultureInfo.InvariantCulture, $"{Optional(level.Acc5),7}  {F(level.Ece, "0.0000"),7}  ");
            sb.Append(CultureInfo.InvariantCulture, $"{(level.GradNorm is { } g ? G(g) : "-"),10}");
            sb.Append(attacked ? $"  {Optional(level.AttackL2),9}\n" : "\n");
        }
        sb.Append(CultureInfo.InvariantCulture,
            $"({report.Images} images × {report.NoiseRepeats} noise draws per level, T = {report.NumTimesteps}, {report.Classes.Count} classes, seed {report.Seed})\n");
        if (report.Attack is { } attack)
            sb.Append(CultureInfo.InvariantCulture, $"(rob@1: acc@1 under {attack.Describe()}, eval mode; attack L2: mean ‖δ‖₂ of the successful attacks)\n");
        return sb.ToString();
    }

    private static string Optional(double? value) => value is { } v ? F(v, "0.0000") : "-";

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    private static string G(double value) => value.ToString(value != 0 && (Math.Abs(value) >= 1e5 || Math.Abs(value) < 1e-3) ? "0.000e0" : "0.0000", CultureInfo.InvariantCulture);
}
