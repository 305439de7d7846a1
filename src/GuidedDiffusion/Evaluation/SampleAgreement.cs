using System.Globalization;
using System.Text;
using GuidedDiffusion.Models;
using static TorchSharp.torch;

namespace GuidedDiffusion.Evaluation;

/// <summary>
/// How often an independent classifier labels generated samples as the class they were requested for: the
/// measure of classifier guidance's effect (a clean classifier judges, so the guiding classifier cannot grade
/// its own work).
/// </summary>
public sealed record SampleAgreement
{
    /// <summary>Number of samples judged.</summary>
    public int Samples { get; init; }

    /// <summary>Fraction whose top-1 class is the requested one.</summary>
    public double Top1 { get; init; }

    /// <summary>Fraction whose requested class is among the top 5 (null below 5 classes).</summary>
    public double? Top5 { get; init; }

    /// <summary>Mean probability the judge gives the requested class.</summary>
    public double MeanProbability { get; init; }

    /// <summary>Per requested class: samples asked for and fraction labelled as it (NaN when none were asked for).</summary>
    public IReadOnlyList<(int Count, double Top1)> PerClass { get; init; } = Array.Empty<(int, double)>();

    /// <summary>The judge's top-1 class of every sample, in order.</summary>
    public IReadOnlyList<int> Predicted { get; init; } = Array.Empty<int>();

    /// <summary>
    /// Classifies <paramref name="images"/> (uint8 NHWC, 3 channels, scaled to [-1, 1] like the loaders do) at
    /// timestep <paramref name="timestep"/> and compares with <paramref name="requested"/>.
    /// </summary>
    /// <param name="judge">The classifier (eval mode is set for the call and restored).</param>
    /// <param name="images">N·H·W·3 bytes, H = W = the judge's image size.</param>
    /// <param name="requested">The requested class of each image (labels below the judge's class count).</param>
    /// <param name="timestep">The t given to the judge; 0 for a clean (<c>--noised False</c>) classifier.</param>
    /// <param name="batchSize">Images per forward pass.</param>
    /// <exception cref="ArgumentException">Sizes disagree, or a requested class is outside the judge's classes.</exception>
    public static SampleAgreement Measure(EncoderUNet judge, byte[] images, IReadOnlyList<long> requested, int timestep = 0, int batchSize = 100)
    {
        ArgumentNullException.ThrowIfNull(judge);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(requested);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        int size = judge.Options.ImageSize, classes = judge.Options.OutChannels, n = requested.Count;
        long imageBytes = (long)size * size * 3;
        if (images.LongLength != n * imageBytes)
            throw new ArgumentException($"{n} labels need {n}×{size}×{size}×3 images ({n * imageBytes} bytes) for this {size}-pixel classifier, got {images.LongLength} bytes.", nameof(images));
        foreach (var label in requested)
            if (label < 0 || label >= classes)
                throw new ArgumentException($"requested class {label} is outside the classifier's {classes} classes.", nameof(requested));

        var predicted = new int[n];
        var rankOk = new bool[n];
        double probabilitySum = 0;
        int k = Math.Min(5, classes);
        // The batches are made on the judge's device.
        var device = judge.parameters().First().device;
        bool wasTraining = judge.training;
        judge.eval();
        try
        {
            using var noGrad = no_grad();
            for (int start = 0; start < n; start += batchSize)
            {
                using var scope = NewDisposeScope();
                int count = Math.Min(batchSize, n - start);
                var slice = images.AsSpan((int)(start * imageBytes), (int)(count * imageBytes)).ToArray();
                var x = tensor(slice, new long[] { count, size, size, 3 }, device: device).to(ScalarType.Float32)
                    .div(127.5).sub(1).permute(0, 3, 1, 2).contiguous();
                var y = tensor(requested.Skip(start).Take(count).ToArray(), device: device);
                var probs = judge.forward(x, full(new long[] { count }, timestep, dtype: ScalarType.Int64, device: device)).to(ScalarType.Float32).softmax(1);
                // One topk gives both: top-1 is its first column (not argmax, so ties from an untrained head resolve
                // the same way in both numbers).
                var top = probs.topk(k, dim: 1).indexes;
                var top1 = ComputeDevice.ToArray<long>(top[.., 0]);
                var inTopK = ComputeDevice.ToArray<bool>(TopKAccuracy.HitsAmong(top, y));
                probabilitySum += probs.gather(1, y.unsqueeze(1)).sum().item<float>();
                for (int i = 0; i < count; i++)
                {
                    predicted[start + i] = (int)top1[i];
                    rankOk[start + i] = inTopK[i];
                }
            }
        }
        finally
        {
            judge.train(wasTraining);
        }

        var perClass = Enumerable.Range(0, classes).Select(c =>
        {
            var asked = Enumerable.Range(0, n).Where(i => requested[i] == c).ToArray();
            return (asked.Length, asked.Length == 0 ? double.NaN : asked.Count(i => predicted[i] == c) / (double)asked.Length);
        }).ToArray();
        return new SampleAgreement
        {
            Samples = n,
            Top1 = n == 0 ? double.NaN : Enumerable.Range(0, n).Count(i => predicted[i] == requested[i]) / (double)n,
            Top5 = classes < 5 || n == 0 ? null : rankOk.Count(ok => ok) / (double)n,
            MeanProbability = n == 0 ? double.NaN : probabilitySum / n,
            PerClass = perClass,
            Predicted = predicted,
        };
    }

    /// <summary>A fixed-width table: one row per (name, agreement), columns samples, agree@1, agree@5, mean p(requested).</summary>
    public static string FormatTable(IEnumerable<(string Name, SampleAgreement Agreement)> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var list = rows.ToList();
        int width = Math.Max(6, list.Count == 0 ? 0 : list.Max(r => r.Name.Length));
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{"file".PadRight(width)}  {"samples",7}  {"agree@1",7}  {"agree@5",7}  {"p(req)",7}\n");
        foreach (var (name, a) in list)
            sb.Append(CultureInfo.InvariantCulture,
                $"{name.PadRight(width)}  {a.Samples,7}  {F(a.Top1),7}  {(a.Top5 is { } t5 ? F(t5) : "-"),7}  {F(a.MeanProbability),7}\n");
        return sb.ToString();
    }

    private static string F(double value) => value.ToString("0.000", CultureInfo.InvariantCulture);
}
