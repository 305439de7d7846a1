using System.Globalization;
using System.Text;
using System.Text.Json;

namespace GuidedDiffusion.Evaluation;

/// <summary>Writes and reads an <see cref="EvaluationReport"/> as eval.csv, eval.json and eval.png.</summary>
public static class EvaluationFiles
{
    /// <summary>File name of the CSV: one row per timestep.</summary>
    public const string CsvName = "eval.csv";

    /// <summary>File name of the JSON report.</summary>
    public const string JsonName = "eval.json";

    /// <summary>File name of the plot.</summary>
    public const string PlotName = "eval.png";

    /// <summary>The fixed CSV columns; one <c>acc@1[class name]</c> column per class follows them.</summary>
    public static IReadOnlyList<string> CsvColumns { get; } = ["t", "samples", "loss", "acc@1", "acc@5", "ece", "grad_norm"];

    /// <summary>The columns a report with an attack adds after <see cref="CsvColumns"/>, before the per-class ones.</summary>
    public static IReadOnlyList<string> RobustCsvColumns { get; } = ["robust_acc@1", "attack_l2"];

    /// <summary>JSON settings of eval.json (camelCase, indented).</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
    };

    /// <summary>Writes eval.csv, eval.json and eval.png into <paramref name="directory"/> (created if missing).</summary>
    /// <returns>The three paths, in that order.</returns>
    public static string[] WriteAll(EvaluationReport report, string directory)
    {
        Directory.CreateDirectory(directory);
        var csv = Path.Combine(directory, CsvName);
        var json = Path.Combine(directory, JsonName);
        var png = Path.Combine(directory, PlotName);
        WriteCsv(report, csv);
        WriteJson(report, json);
        Plots.NoiseLevels(report, png);
        return [csv, json, png];
    }

    /// <summary>Writes the CSV: the fixed columns, then per-class accuracy; empty cells for absent values.</summary>
    public static void WriteCsv(EvaluationReport report, string path)
    {
        ArgumentNullException.ThrowIfNull(report);
        var sb = new StringBuilder();
        bool attacked = report.Attack is not null;
        var fixedColumns = attacked ? CsvColumns.Concat(RobustCsvColumns) : CsvColumns;
        sb.AppendJoin(',', fixedColumns.Concat(report.Classes.Select(c => Quote($"acc@1[{c}]")))).Append('\n');
        foreach (var level in report.Levels)
        {
            var cells = new List<string>
            {
                level.Timestep.ToString(CultureInfo.InvariantCulture),
                level.Samples.ToString(CultureInfo.InvariantCulture),
                R(level.Loss), R(level.Acc1), R(level.Acc5), R(level.Ece), R(level.GradNorm),
            };
            if (attacked) cells.AddRange([R(level.RobustAcc1), R(level.AttackL2)]);
            cells.AddRange(level.PerClassAccuracy.Select(R));
            sb.AppendJoin(',', cells).Append('\n');
        }
        File.WriteAllText(path, sb.ToString(), new UTF8Encoding(false));
    }

    /// <summary>Writes the report as indented JSON.</summary>
    public static void WriteJson(EvaluationReport report, string path) =>
        File.WriteAllText(path, JsonSerializer.Serialize(report, JsonOptions), new UTF8Encoding(false));

    /// <summary>Reads a report written by <see cref="WriteJson"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not an eval.json.</exception>
    public static EvaluationReport ReadJson(string path)
    {
        EvaluationReport? report;
        try
        {
            report = JsonSerializer.Deserialize<EvaluationReport>(File.ReadAllText(path), JsonOptions);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not a valid evaluation report: {e.Message}", e);
        }
        return report ?? throw new InvalidDataException($"'{path}' is empty (null JSON).");
    }

    private static string R(double? value) => value is { } v ? v.ToString("R", CultureInfo.InvariantCulture) : "";

    private static string Quote(string cell) =>
        cell.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + cell.Replace("\"", "\"\"") + "\"" : cell;
}
