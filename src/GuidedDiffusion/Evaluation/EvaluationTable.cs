using System.Globalization;
using System.Text;

namespace GuidedDiffusion.Evaluation;

/// <summary>The short text table of an <see cref="EvaluationReport"/>: one row per timestep.</summary>
public static class EvaluationTable
{
    /// <summary>
    /// Columns t, loss, acc@1, acc@5 (“-” below 5 classes), ECE and grad norm (“-” when not computed), fixed-width,
    /// followed by a line saying what was evaluated.
    /// </summary>
    public static string Format(EvaluationReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{"t",6}  {"loss",8}  {"acc@1",7}  {"acc@5",7}  {"ECE",7}  {"grad norm",10}\n");
        foreach (var level in report.Levels)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{level.Timestep,6}  {F(level.Loss, "0.0000"),8}  {F(level.Acc1, "0.0000"),7}  ");
            sb.Append(CultureInfo.InvariantCulture, $"{(level.Acc5 is { } a5 ? F(a5, "0.0000") : "-"),7}  {F(level.Ece, "0.0000"),7}  ");
            sb.Append(CultureInfo.InvariantCulture, $"{(level.GradNorm is { } g ? G(g) : "-"),10}\n");
        }
        sb.Append(CultureInfo.InvariantCulture,
            $"({report.Images} images × {report.NoiseRepeats} noise draws per level, T = {report.NumTimesteps}, {report.Classes.Count} classes, seed {report.Seed})\n");
        return sb.ToString();
    }

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    private static string G(double value) => value.ToString(value != 0 && (Math.Abs(value) >= 1e5 || Math.Abs(value) < 1e-3) ? "0.000e0" : "0.0000", CultureInfo.InvariantCulture);
}
