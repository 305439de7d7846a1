using System.Globalization;
using System.Text;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
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

    /// <summary>The 95 % Wilson score interval of <see cref="Top1"/>.</summary>
    public WilsonInterval Top1Interval { get; init; } = new(double.NaN, double.NaN);

    /// <summary>The 95 % Wilson score interval of <see cref="Top5"/> (null when <see cref="Top5"/> is).</summary>
    public WilsonInterval? Top5Interval { get; init; }

    /// <summary>
    /// <see cref="FeatureDiversity"/> of the judge's penultimate features among the samples of each requested class,
    /// averaged over the classes with two or more samples (NaN when none has).
    /// </summary>
    public double Diversity { get; init; } = double.NaN;

    /// <summary>Per requested class, the mean pairwise feature distance of its samples (NaN below two samples).</summary>
    public IReadOnlyList<double> PerClassDiversity { get; init; } = Array.Empty<double>();

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
        int size = judge.Options.ImageSize, n = requested.Count;
        long imageBytes = (long)size * size * 3;
        if (images.LongLength != n * imageBytes)
            throw new ArgumentException($"{n} labels need {n}×{size}×{size}×3 images ({n * imageBytes} bytes) for this {size}-pixel classifier, got {images.LongLength} bytes.", nameof(images));
        CheckLabels(judge, requested, nameof(requested));
        return Judge(judge, ByteBatches(images, requested, size, batchSize), timestep);

        static IEnumerable<(long[] Labels, Func<Tensor> Images)> ByteBatches(byte[] images, IReadOnlyList<long> requested, int size, int batchSize)
        {
            long imageBytes = (long)size * size * 3;
            for (int start = 0; start < requested.Count; start += batchSize)
            {
                int count = Math.Min(batchSize, requested.Count - start), first = start;
                yield return (requested.Skip(start).Take(count).ToArray(), () =>
                    tensor(images.AsSpan((int)(first * imageBytes), (int)(count * imageBytes)).ToArray(), new long[] { count, size, size, 3 })
                        .to(ScalarType.Float32).div(127.5).sub(1).permute(0, 3, 1, 2).contiguous());
            }
        }
    }

    /// <summary>
    /// The same measurement on real labelled images: the first <paramref name="limit"/> images of
    /// <paramref name="source"/> with their true classes as the requested ones (so <see cref="Top1"/> is the judge's
    /// accuracy on them), preprocessed like validation data (centre crop to the judge's size, no flip).
    /// </summary>
    /// <param name="judge">The classifier.</param>
    /// <param name="source">Labelled images; its labels must lie below the judge's class count.</param>
    /// <param name="limit">At most this many images, in the source's order.</param>
    /// <param name="timestep">The t given to the judge.</param>
    /// <param name="batchSize">Images per forward pass.</param>
    /// <param name="numWorkers">Image-decoding threads (0: on the caller's thread).</param>
    /// <exception cref="ArgumentException">A label is outside the judge's classes.</exception>
    public static SampleAgreement MeasureSource(EncoderUNet judge, IImageSource source, int limit, int timestep = 0, int batchSize = 100, int numWorkers = 0)
    {
        ArgumentNullException.ThrowIfNull(judge);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        int n = Math.Min(limit, source.Count);
        CheckLabels(judge, Enumerable.Range(0, n).Select(i => (long)source.LabelOf(i)).ToArray(), nameof(source));
        var data = new DataOptions { ImageSize = judge.Options.ImageSize, BatchSize = batchSize, NumWorkers = numWorkers };
        return Judge(judge, LoaderBatches(source, data, n), timestep);

        static IEnumerable<(long[] Labels, Func<Tensor> Images)> LoaderBatches(IImageSource source, DataOptions data, int n)
        {
            int done = 0;
            if (n == 0) yield break;
            foreach (var batch in DataLoader.EnumerateOnce(source, data))
            {
                int count = Math.Min(batch.Count, n - done);
                using (batch)
                {
                    long[] labels;
                    using (NewDisposeScope())
                        labels = batch.Labels.narrow(0, 0, count).to_type(ScalarType.Int64).data<long>().ToArray();
                    yield return (labels, () => batch.Images.narrow(0, 0, count));
                }
                done += count;
                if (done >= n) yield break;
            }
        }
    }

    private static void CheckLabels(EncoderUNet judge, IReadOnlyList<long> labels, string parameter)
    {
        int classes = judge.Options.OutChannels;
        foreach (var label in labels)
            if (label < 0 || label >= classes)
                throw new ArgumentException($"requested class {label} is outside the classifier's {classes} classes.", parameter);
    }

    /// <summary>One forward pass per batch gives the probabilities (agreement) and the penultimate features (diversity).</summary>
    private static SampleAgreement Judge(EncoderUNet judge, IEnumerable<(long[] Labels, Func<Tensor> Images)> batches, int timestep)
    {
        int classes = judge.Options.OutChannels, width = judge.HeadFeatureWidth;
        var requested = new List<long>();
        var predicted = new List<int>();
        var rankOk = new List<bool>();
        var features = new List<float>();
        double probabilitySum = 0;
        int k = Math.Min(5, classes);
        bool wasTraining = judge.training;
        judge.eval();
        try
        {
            using var noGrad = no_grad();
            foreach (var (labels, images) in batches)
            {
                using var scope = NewDisposeScope();
                int count = labels.Length;
                var x = images();
                var y = tensor(labels);
                var (logits, penultimate) = judge.ForwardWithFeatures(x, full(new long[] { count }, timestep, dtype: ScalarType.Int64));
                var probs = logits.to(ScalarType.Float32).softmax(1);
                // One topk gives both: top-1 is its first column (not argmax, so ties from an untrained head resolve
                // the same way in both numbers).
                var top = probs.topk(k, dim: 1).indexes;
                predicted.AddRange(top[.., 0].data<long>().ToArray().Select(v => (int)v));
                rankOk.AddRange(TopKAccuracy.HitsAmong(top, y).data<bool>().ToArray());
                probabilitySum += probs.gather(1, y.unsqueeze(1)).sum().item<float>();
                features.AddRange(penultimate.to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray());
                requested.AddRange(labels);
            }
        }
        finally
        {
            judge.train(wasTraining);
        }

        int n = requested.Count;
        var perClass = Enumerable.Range(0, classes).Select(c =>
        {
            var asked = Enumerable.Range(0, n).Where(i => requested[i] == c).ToArray();
            return (asked.Length, asked.Length == 0 ? double.NaN : asked.Count(i => predicted[i] == c) / (double)asked.Length);
        }).ToArray();
        int top1Hits = Enumerable.Range(0, n).Count(i => predicted[i] == requested[i]), top5Hits = rankOk.Count(ok => ok);
        using var featureTensor = tensor(features.ToArray(), new long[] { n, width });
        var (diversity, perClassDiversity) = FeatureDiversity.Measure(featureTensor, requested, classes);
        return new SampleAgreement
        {
            Samples = n,
            Top1 = n == 0 ? double.NaN : top1Hits / (double)n,
            Top5 = classes < 5 || n == 0 ? null : top5Hits / (double)n,
            MeanProbability = n == 0 ? double.NaN : probabilitySum / n,
            PerClass = perClass,
            Predicted = predicted,
            Top1Interval = WilsonInterval.Of(top1Hits, n),
            Top5Interval = classes < 5 || n == 0 ? null : WilsonInterval.Of(top5Hits, n),
            Diversity = diversity,
            PerClassDiversity = perClassDiversity,
        };
    }

    /// <summary>
    /// A fixed-width table: one row per (name, agreement), columns samples, agree@1 and its 95 % interval, agree@5
    /// and its interval, mean p(requested) and the diversity; then, when given, the reference row (real images).
    /// </summary>
    /// <param name="rows">The sample files' measurements.</param>
    /// <param name="reference">The real images' measurement, printed last below a rule, or null.</param>
    public static string FormatTable(IEnumerable<(string Name, SampleAgreement Agreement)> rows, (string Name, SampleAgreement Agreement)? reference = null)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var list = rows.ToList();
        var all = reference is { } r ? list.Append(r).ToList() : list;
        int width = Math.Max(6, all.Count == 0 ? 0 : all.Max(x => x.Name.Length));
        var sb = new StringBuilder();
        string header = $"{"file".PadRight(width)}  {"samples",7}  {"agree@1",7}  {"95% CI",13}  {"agree@5",7}  {"95% CI",13}  {"p(req)",7}  {"diversity",9}";
        sb.Append(header).Append('\n');
        foreach (var (name, a) in list) AppendRow(sb, name, a, width);
        if (reference is { } real)
        {
            sb.Append(new string('-', header.Length)).Append('\n');
            AppendRow(sb, real.Name, real.Agreement, width);
        }
        return sb.ToString();
    }

    private static void AppendRow(StringBuilder sb, string name, SampleAgreement a, int width) =>
        sb.Append(CultureInfo.InvariantCulture,
            $"{name.PadRight(width)}  {a.Samples,7}  {F(a.Top1),7}  {Interval(a.Top1Interval),13}  {(a.Top5 is { } t5 ? F(t5) : "-"),7}  "
            + $"{(a.Top5Interval is { } i5 ? Interval(i5) : "-"),13}  {F(a.MeanProbability),7}  {F(a.Diversity),9}\n");

    private static string Interval(WilsonInterval i) => $"[{F(i.Lower)}, {F(i.Upper)}]";

    private static string F(double value) => value.ToString("0.000", CultureInfo.InvariantCulture);
}
