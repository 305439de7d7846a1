using System.Globalization;

namespace GuidedDiffusion.Evaluation;

/// <summary>A training run's progress.csv as columns of numbers (an empty cell reads as NaN).</summary>
public sealed class ProgressLog
{
    private readonly Dictionary<string, double[]> _columns;

    private ProgressLog(string path, Dictionary<string, double[]> columns, int rows)
    {
        Path = path;
        _columns = columns;
        Rows = rows;
    }

    /// <summary>The file read.</summary>
    public string Path { get; }

    /// <summary>Number of data rows.</summary>
    public int Rows { get; }

    /// <summary>The column names, in file order.</summary>
    public IReadOnlyCollection<string> Columns => _columns.Keys;

    /// <summary>Whether a column exists.</summary>
    public bool Has(string column) => _columns.ContainsKey(column);

    /// <summary>The values of <paramref name="column"/>, NaN where a row left it empty.</summary>
    /// <exception cref="KeyNotFoundException">No such column.</exception>
    public double[] this[string column] => _columns.TryGetValue(column, out var values)
        ? values
        : throw new KeyNotFoundException($"'{Path}' has no column '{column}'.");

    /// <summary>Reads <c>progress.csv</c> from the run folder <paramref name="logDir"/>.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">The folder has no progress.csv.</exception>
    /// <exception cref="ConfigurationException">progress.csv is empty, has no data rows, no <c>step</c> column, or a cell that is not a number.</exception>
    public static ProgressLog Read(string logDir)
    {
        if (!Directory.Exists(logDir))
        {
            var missing = $"{SettingText.Ref("log_dir")} '{logDir}' does not exist.";
            throw new DirectoryNotFoundException(SettingText.Plain(missing)).WithMarkedMessage(missing);
        }
        var path = System.IO.Path.Combine(logDir, "progress.csv");
        if (!File.Exists(path))
        {
            var noLog = $"'{logDir}' has no progress.csv: point {SettingText.Ref("log_dir")} at a run folder written by classifier-train.";
            throw new FileNotFoundException(SettingText.Plain(noLog), path).WithMarkedMessage(noLog);
        }
        var lines = File.ReadAllLines(path).Where(l => l.Length > 0).ToArray();
        if (lines.Length == 0)
            throw new ConfigurationException("log_dir", $"'{path}' is empty: the run has not logged anything yet.");
        if (lines.Length == 1)
            throw new ConfigurationException("log_dir", $"'{path}' has a header but no rows yet: the run has not reached its first log dump.");
        var header = lines[0].Split(',');
        if (!header.Contains("step"))
            throw new ConfigurationException("log_dir", $"'{path}' has no 'step' column; is it a classifier-train progress.csv?");
        var values = header.Select(_ => new double[lines.Length - 1]).ToArray();
        for (int r = 1; r < lines.Length; r++)
        {
            var cells = lines[r].Split(',');
            for (int c = 0; c < header.Length; c++)
            {
                var cell = c < cells.Length ? cells[c] : "";
                if (cell.Length == 0) values[c][r - 1] = double.NaN;
                else if (!double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out values[c][r - 1]))
                    throw new ConfigurationException("log_dir", $"'{path}' line {r + 1}, column '{header[c]}': '{cell}' is not a number.");
            }
        }
        var columns = new Dictionary<string, double[]>();
        for (int c = 0; c < header.Length; c++) columns[header[c]] = values[c];
        return new ProgressLog(path, columns, lines.Length - 1);
    }
}
