using ScottPlot;

namespace GuidedDiffusion.Evaluation;

/// <summary>PNG plots (ScottPlot 5, rendered headless with SkiaSharp): metrics per noise level and training curves.</summary>
public static class Plots
{
    /// <summary>Width of the PNGs in pixels.</summary>
    public const int Width = 1000;

    /// <summary>Height of the PNGs in pixels (two stacked panels).</summary>
    public const int Height = 800;

    /// <summary>File name of the loss / acc@1 curves written by <see cref="TrainingCurves"/>.</summary>
    public const string CurvesName = "curves.png";

    /// <summary>File name of the per-quartile curves written by <see cref="TrainingCurves"/>.</summary>
    public const string QuartileCurvesName = "curves_quartiles.png";

    /// <summary>
    /// eval.png: top panel acc@1 and acc@5 (and robust acc@1 when attacked) against t, bottom panel loss (left axis) and ECE (right axis) against t,
    /// one line per metric.
    /// </summary>
    public static void NoiseLevels(EvaluationReport report, string path)
    {
        ArgumentNullException.ThrowIfNull(report);
        var t = report.Levels.Select(l => (double)l.Timestep).ToArray();

        var accuracy = new Plot();
        AddLine(accuracy, t, report.Levels.Select(l => l.Acc1).ToArray(), "acc@1");
        if (report.Levels.All(l => l.Acc5 is not null))
            AddLine(accuracy, t, report.Levels.Select(l => l.Acc5!.Value).ToArray(), "acc@5");
        if (report.Attack is not null && report.Levels.All(l => l.RobustAcc1 is not null))
            AddLine(accuracy, t, report.Levels.Select(l => l.RobustAcc1!.Value).ToArray(), "robust acc@1 (eps " + report.Attack.Eps.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) + ")");
        accuracy.Title($"Accuracy vs noise level ({report.Images} images, {report.Classes.Count} classes)");
        accuracy.XLabel($"timestep t (of {report.NumTimesteps})");
        accuracy.YLabel("accuracy");
        accuracy.Axes.SetLimitsY(0, 1.05);
        accuracy.ShowLegend(Alignment.LowerLeft);

        var loss = new Plot();
        AddLine(loss, t, report.Levels.Select(l => l.Loss).ToArray(), "loss (left)");
        var ece = AddLine(loss, t, report.Levels.Select(l => l.Ece).ToArray(), "ECE (right)");
        ece.Axes.YAxis = loss.Axes.Right;
        loss.Axes.Right.Label.Text = "expected calibration error";
        loss.Title("Cross-entropy and calibration vs noise level");
        loss.XLabel($"timestep t (of {report.NumTimesteps})");
        loss.YLabel("loss (nats)");
        loss.ShowLegend(Alignment.UpperLeft);

        SaveRows(path, accuracy, loss);
    }

    /// <summary>
    /// Training curves of the run in <paramref name="logDir"/> from its progress.csv: <see cref="CurvesName"/> (train and
    /// validation loss and acc@1 against step) and, when the quartile columns exist, <see cref="QuartileCurvesName"/>
    /// (loss and acc@1 per timestep quartile q0..q3; train solid, validation dashed).
    /// </summary>
    /// <returns>The PNGs written.</returns>
    /// <exception cref="FileNotFoundException">No progress.csv.</exception>
    /// <exception cref="ConfigurationException">progress.csv is empty or has none of the loss / accuracy columns.</exception>
    public static IReadOnlyList<string> TrainingCurves(string logDir)
    {
        var log = ProgressLog.Read(logDir);
        var step = log["step"];
        var written = new List<string>();

        var loss = new Plot();
        var acc = new Plot();
        int lines = 0;
        foreach (var prefix in new[] { "train", "val" })
        {
            lines += AddColumn(loss, log, step, $"{prefix}_loss", prefix);
            lines += AddColumn(acc, log, step, $"{prefix}_acc@1", prefix);
        }
        if (lines == 0)
            throw new ConfigurationException("log_dir", $"'{log.Path}' has no train_/val_ loss or acc@1 values to plot.");
        Label(loss, "Loss", "cross-entropy (nats)");
        Label(acc, "Accuracy (acc@1)", "acc@1", Alignment.LowerRight);
        var curves = Path.Combine(logDir, CurvesName);
        SaveRows(curves, loss, acc);
        written.Add(curves);

        var qLoss = new Plot();
        var qAcc = new Plot();
        int qLines = 0;
        for (int q = 0; q < 4; q++)
        {
            // One colour per quartile: train solid, validation dashed.
            var colour = Palette.Default.GetColor(q);
            qLines += AddColumn(qLoss, log, step, $"train_loss_q{q}", $"train q{q}", colour);
            qLines += AddColumn(qAcc, log, step, $"train_acc@1_q{q}", $"train q{q}", colour);
            AddColumn(qLoss, log, step, $"val_loss_q{q}", $"val q{q}", colour, dashed: true);
            AddColumn(qAcc, log, step, $"val_acc@1_q{q}", $"val q{q}", colour, dashed: true);
        }
        if (qLines > 0)
        {
            Label(qLoss, "Loss per timestep quartile (q0: least noise; solid: train, dashed: validation)", "cross-entropy (nats)");
            Label(qAcc, "acc@1 per timestep quartile (q0: least noise; solid: train, dashed: validation)", "acc@1", Alignment.LowerRight);
            var quartiles = Path.Combine(logDir, QuartileCurvesName);
            SaveRows(quartiles, qLoss, qAcc);
            written.Add(quartiles);
        }
        return written;
    }

    private static int AddColumn(Plot plot, ProgressLog log, double[] step, string column, string legend, Color? colour = null, bool dashed = false)
    {
        if (!log.Has(column)) return 0;
        var values = log[column];
        var keep = Enumerable.Range(0, values.Length).Where(i => double.IsFinite(values[i]) && double.IsFinite(step[i])).ToArray();
        if (keep.Length == 0) return 0;
        var line = AddLine(plot, keep.Select(i => step[i]).ToArray(), keep.Select(i => values[i]).ToArray(), legend);
        if (colour is { } c) line.Color = c;
        if (dashed) line.LinePattern = LinePattern.Dashed;
        return 1;
    }

    private static ScottPlot.Plottables.Scatter AddLine(Plot plot, double[] xs, double[] ys, string legend)
    {
        var line = plot.Add.Scatter(xs, ys);
        line.LegendText = legend;
        line.LineWidth = 2;
        line.MarkerSize = xs.Length > 50 ? 0 : 5;
        return line;
    }

    private static void Label(Plot plot, string title, string yLabel, Alignment legend = Alignment.UpperRight)
    {
        plot.Title(title);
        plot.XLabel("step");
        plot.YLabel(yLabel);
        plot.ShowLegend(legend);
    }

    private static void SaveRows(string path, Plot top, Plot bottom)
    {
        var multiplot = new Multiplot(top);
        multiplot.AddPlot(bottom);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Rows();
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null) Directory.CreateDirectory(directory);
        multiplot.SavePng(path, Width, Height);
    }
}
