using TorchSharp;

namespace GuidedDiffusion.Distributed;

/// <summary>How <see cref="GradientAllReducer"/> moves gradients through the communicator.</summary>
public enum GradientReduction
{
    /// <summary>
    /// <see cref="InPlace"/> when every parameter is float32 on the CPU, else <see cref="Bucketed"/>.
    /// In place was measured faster on the CPU: the transport dominates and bucketing adds two copies of
    /// every gradient (41 M floats, 2 ranks, fastest runs: 129 ms in place against 248–279 ms bucketed;
    /// see bench/BENCHMARKS.md).
    /// </summary>
    Auto,

    /// <summary>
    /// Copy gradients into a reusable flat buffer of at most the bucket size, all-reduce the buffer, copy
    /// back (PyTorch DDP's scheme). Few large messages; works for any device and dtype.
    /// </summary>
    Bucketed,

    /// <summary>
    /// All-reduce each gradient where it lies (one message per parameter, no copies). Needs float32
    /// parameters on the CPU.
    /// </summary>
    InPlace,
}

/// <summary>
/// Averages the gradients of a fixed list of parameters over all ranks after each backward pass, so that
/// every rank applies the same update (data-parallel training).
/// </summary>
/// <remarks>
/// Every rank must construct it with the same parameters in the same order. A parameter that has no
/// gradient on this rank (unused in this step) is given a zero gradient first: all ranks must exchange the
/// same layout, and counting that rank as contributing zero is what PyTorch DDP does.
/// </remarks>
public sealed class GradientAllReducer : IDisposable
{
    /// <summary>
    /// 128 MB. PyTorch DDP's <c>bucket_cap_mb</c> default is 25 MB, chosen to overlap communication with the
    /// backward pass; we reduce after backward, where 25 MB and 128 MB measured the same (bench/BENCHMARKS.md)
    /// and fewer messages cost less latency across machines.
    /// </summary>
    public const long DefaultBucketBytes = 128L * 1024 * 1024;

    private readonly ICommunicator _communicator;
    private readonly torch.Tensor[] _parameters;
    private readonly IReadOnlyList<Segment[]> _buckets;
    private readonly long _bucketElements;
    private torch.Tensor? _buffer;

    /// <summary>Prepares the bucket layout for <paramref name="parameters"/> (those with requires_grad).</summary>
    /// <param name="communicator">The run's communicator.</param>
    /// <param name="parameters">The trained parameters, in the same order on every rank.</param>
    /// <param name="bucketBytes">The size of the reusable float32 buffer for <see cref="GradientReduction.Bucketed"/>.</param>
    /// <param name="strategy">How to move the gradients.</param>
    /// <exception cref="ArgumentException">A bucket smaller than one float, or <see cref="GradientReduction.InPlace"/> with parameters that are not float32 on the CPU.</exception>
    public GradientAllReducer(
        ICommunicator communicator,
        IEnumerable<torch.Tensor> parameters,
        long bucketBytes = DefaultBucketBytes,
        GradientReduction strategy = GradientReduction.Auto)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(parameters);
        if (bucketBytes < sizeof(float))
        {
            throw new ArgumentOutOfRangeException(nameof(bucketBytes), bucketBytes, "A bucket must hold at least one float32.");
        }
        _communicator = communicator;
        _parameters = parameters.Where(p => p.requires_grad).ToArray();
        BucketBytes = bucketBytes;
        _bucketElements = bucketBytes / sizeof(float);
        var unsuitable = _parameters.FirstOrDefault(p => p.device_type != DeviceType.CPU || p.dtype != torch.ScalarType.Float32);
        Strategy = strategy == GradientReduction.Auto
            ? (unsuitable is null ? GradientReduction.InPlace : GradientReduction.Bucketed)
            : strategy;
        if (Strategy == GradientReduction.InPlace)
        {
            if (unsuitable is not null)
            {
                throw new ArgumentException(
                    $"In-place gradient reduction needs float32 CPU parameters, found {unsuitable.dtype} on {unsuitable.device}; use {nameof(GradientReduction.Bucketed)}.",
                    nameof(parameters));
            }
        }
        _buckets = PlanBuckets(_parameters.Select(p => p.numel()), _bucketElements);
        ElementCount = _parameters.Sum(p => p.numel());
    }

    /// <summary>The strategy in use (<see cref="GradientReduction.Auto"/> resolved at construction).</summary>
    public GradientReduction Strategy { get; }

    /// <summary>The bucket size in bytes.</summary>
    public long BucketBytes { get; }

    /// <summary>The number of gradient elements reduced per call.</summary>
    public long ElementCount { get; }

    /// <summary>The number of buckets <see cref="GradientReduction.Bucketed"/> uses per call.</summary>
    public int BucketCount => _buckets.Count;

    /// <summary>The number of all-reduce messages per call with the strategy in use.</summary>
    public int MessageCount => Strategy == GradientReduction.InPlace ? _parameters.Length : _buckets.Count;

    /// <summary>Replaces every parameter's gradient by its mean over all ranks. Call after backward, before the optimizer step.</summary>
    public void AllReduceMean()
    {
        if (_communicator.WorldSize == 1 || _parameters.Length == 0)
        {
            return;
        }
        using var scope = torch.NewDisposeScope();
        var gradients = PrepareGradients();
        if (Strategy == GradientReduction.InPlace)
        {
            ReduceInPlace(gradients);
        }
        else
        {
            ReduceBucketed(gradients);
        }
    }

    /// <summary>Releases the bucket buffer.</summary>
    public void Dispose()
    {
        _buffer?.Dispose();
        _buffer = null;
    }

    /// <summary>
    /// Splits a concatenation of tensors with <paramref name="sizes"/> elements into buckets of at most
    /// <paramref name="bucketElements"/>; a tensor may straddle buckets, so one larger than a bucket still fits.
    /// </summary>
    internal static IReadOnlyList<Segment[]> PlanBuckets(IEnumerable<long> sizes, long bucketElements)
    {
        var buckets = new List<Segment[]>();
        var current = new List<Segment>();
        long used = 0;
        var index = 0;
        foreach (var size in sizes)
        {
            long offset = 0;
            while (offset < size)
            {
                var length = Math.Min(size - offset, bucketElements - used);
                current.Add(new Segment(index, offset, used, length));
                offset += length;
                used += length;
                if (used == bucketElements)
                {
                    buckets.Add([.. current]);
                    current.Clear();
                    used = 0;
                }
            }
            index++;
        }
        if (current.Count > 0)
        {
            buckets.Add([.. current]);
        }
        return buckets;
    }

    /// <summary>Flat, contiguous views of every gradient, creating zero gradients where there are none.</summary>
    private torch.Tensor[] PrepareGradients()
    {
        var flat = new torch.Tensor[_parameters.Length];
        for (var i = 0; i < _parameters.Length; i++)
        {
            var parameter = _parameters[i];
            var gradient = parameter.grad;
            if (gradient is null)
            {
                // Detached from the scope: the parameter owns its gradient beyond this call.
                gradient = torch.zeros_like(parameter).DetachFromDisposeScope();
                parameter.grad = gradient;
            }
            else if (!gradient.is_contiguous())
            {
                gradient = gradient.contiguous().DetachFromDisposeScope();
                parameter.grad = gradient;
            }
            flat[i] = gradient.view(-1);
        }
        return flat;
    }

    private void ReduceInPlace(torch.Tensor[] gradients)
    {
        foreach (var gradient in gradients)
        {
            _communicator.AllReduceSum(gradient);
            gradient.div_(_communicator.WorldSize);
        }
    }

    private void ReduceBucketed(torch.Tensor[] gradients)
    {
        _buffer ??= torch.empty(Math.Min(_bucketElements, ElementCount), dtype: torch.float32).DetachFromDisposeScope();
        foreach (var bucket in _buckets)
        {
            var last = bucket[^1];
            var used = _buffer.narrow(0, 0, last.BucketOffset + last.Length);
            foreach (var segment in bucket)
            {
                _buffer.narrow(0, segment.BucketOffset, segment.Length)
                    .copy_(gradients[segment.Parameter].narrow(0, segment.ParameterOffset, segment.Length));
            }
            _communicator.AllReduceSum(used);
            used.div_(_communicator.WorldSize);
            foreach (var segment in bucket)
            {
                gradients[segment.Parameter].narrow(0, segment.ParameterOffset, segment.Length)
                    .copy_(_buffer.narrow(0, segment.BucketOffset, segment.Length));
            }
        }
    }

    /// <summary>A run of one parameter's gradient inside a bucket.</summary>
    internal readonly record struct Segment(int Parameter, long ParameterOffset, long BucketOffset, long Length);
}
