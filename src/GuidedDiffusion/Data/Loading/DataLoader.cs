using System.Runtime.ExceptionServices;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Data.Transforms;
using static TorchSharp.torch;

namespace GuidedDiffusion.Data.Loading;

/// <summary>
/// Endless batches from an <see cref="IImageSource"/>: this rank's shard (files[rank::world]), reshuffled
/// each epoch from the seed, decoded and augmented on worker threads with a bounded prefetch window.
/// </summary>
/// <remarks>
/// Batch b of the stream is fixed by (seed, rank, world size, options) alone: the epoch order comes from
/// the seed and epoch number, and each sample's augmentation from (seed, epoch, source index). Worker
/// timing only decides when a batch is ready, never what it holds.
/// </remarks>
public sealed class DataLoader : IDisposable
{
    private readonly IImageSource _source;
    private readonly DataOptions _options;
    private readonly Device _device;
    private readonly int[] _shard;
    private readonly bool _singlePass;
    private readonly object _gate = new();
    private readonly Dictionary<long, PendingBatch> _pending = new();
    private readonly Dictionary<long, int[]> _epochOrders = new();
    private readonly Dictionary<int, BadImage> _badImages = new();
    private readonly List<BadImage> _unreported = new();
    private readonly Thread[] _workers;
    private long _nextBatchToClaim;
    private int _nextSampleToClaim;
    private long _nextBatchToReturn;
    private bool _disposed;

    /// <summary>Creates an endless loader and starts its workers.</summary>
    /// <param name="source">The images.</param>
    /// <param name="options">Batching, shard, seed and augmentation.</param>
    /// <param name="device">Where the batches' tensors are created (null: the CPU): the decoded pixels move there once.</param>
    /// <exception cref="DatasetException">This rank's shard cannot fill one batch.</exception>
    public DataLoader(IImageSource source, DataOptions options, Device? device = null) : this(source, options, singlePass: false, device) { }

    private DataLoader(IImageSource source, DataOptions options, bool singlePass, Device? device)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _source = source;
        _options = options;
        _device = device ?? CPU;
        _singlePass = singlePass;
        _shard = Enumerable.Range(0, source.Count).Where(i => i % options.WorldSize == options.Rank).ToArray();
        if (_shard.Length == 0)
            throw new DatasetException($"Rank {options.Rank} of {options.WorldSize} gets no images: the source has only {source.Count}.");
        BatchesPerEpoch = options.DropLast ? _shard.Length / options.BatchSize : (_shard.Length + options.BatchSize - 1) / options.BatchSize;
        if (BatchesPerEpoch == 0)
            throw new DatasetException(
                $"Rank {options.Rank} has {_shard.Length} images, fewer than one batch of {options.BatchSize}, and DropLast is set: no batch would ever be produced.");

        _nextBatchToClaim = _nextBatchToReturn = singlePass ? 0 : options.StartBatch;
        _workers = new Thread[options.NumWorkers];
        for (int i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"DataLoader worker {i}" };
            _workers[i].Start();
        }
    }

    /// <summary>
    /// One pass over the source in fixed order (no shuffle, last partial batch kept), with the
    /// validation preprocessing of <paramref name="options"/> (<see cref="DataOptions.ForValidation"/>).
    /// Each rank gets its shard, files[rank::world]; the caller combines the ranks' results. The batches are created
    /// on <paramref name="device"/> (null: the CPU).
    /// </summary>
    public static IEnumerable<Batch> EnumerateOnce(IImageSource source, DataOptions options, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var passOptions = options.ForValidation() with { Shuffle = false, DropLast = false };
        return Iterate(source, passOptions, device);

        static IEnumerable<Batch> Iterate(IImageSource source, DataOptions passOptions, Device? device)
        {
            using var loader = new DataLoader(source, passOptions, singlePass: true, device);
            while (loader.TryNextCore(out var batch))
                yield return batch;
        }
    }

    /// <summary>The class map of the source.</summary>
    public ClassMap Classes => _source.Classes;

    /// <summary>Batches in one epoch of this rank's shard.</summary>
    public int BatchesPerEpoch { get; }

    /// <summary>Number of the batch the next <see cref="Next"/> returns (counting from the start of the stream).</summary>
    public long BatchIndex
    {
        get { lock (_gate) return _nextBatchToReturn; }
    }

    /// <summary>Epoch of the batch the next <see cref="Next"/> returns.</summary>
    public long Epoch => BatchIndex / BatchesPerEpoch;

    /// <summary>Images in this rank's shard.</summary>
    public int ShardSize => _shard.Length;

    /// <summary>Number of distinct images skipped so far because they failed to decode.</summary>
    public int BadImageCount
    {
        get { lock (_gate) return _badImages.Count; }
    }

    /// <summary>The images skipped so far, with the decoder's reasons.</summary>
    public IReadOnlyList<BadImage> BadImages
    {
        get { lock (_gate) return _badImages.Values.ToArray(); }
    }

    /// <summary>
    /// The images skipped since the last call, each returned once over the loader's life (a file that fails
    /// again in a later epoch is not repeated), so the caller can name every skipped file exactly once.
    /// </summary>
    public IReadOnlyList<BadImage> TakeNewBadImages()
    {
        lock (_gate)
        {
            var taken = _unreported.ToArray();
            _unreported.Clear();
            return taken;
        }
    }

    /// <summary>The next batch; the caller disposes it.</summary>
    /// <exception cref="ImageDecodeException">An image in the batch failed and <see cref="DataOptions.SkipBadImages"/> is off.</exception>
    public Batch Next()
    {
        if (!TryNextCore(out var batch))
            throw new InvalidOperationException("The loader has no more batches.");
        return batch;
    }

    private bool TryNextCore(out Batch batch)
    {
        PendingBatch done;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_singlePass && _nextBatchToReturn >= BatchesPerEpoch)
            {
                batch = null!;
                return false;
            }
            if (_workers.Length == 0)
            {
                // Inline mode: claim and prepare the samples of the wanted batch on this thread.
                while (!IsReady(_nextBatchToReturn))
                {
                    var claim = Claim();
                    Monitor.Exit(_gate);
                    try { Prepare(claim); }
                    finally { Monitor.Enter(_gate); }
                    claim.Batch.Remaining--;
                }
            }
            while (!IsReady(_nextBatchToReturn))
            {
                Monitor.Wait(_gate);
                ObjectDisposedException.ThrowIf(_disposed, this);
            }
            done = _pending[_nextBatchToReturn];
            _pending.Remove(_nextBatchToReturn);
            _nextBatchToReturn++;
            Monitor.PulseAll(_gate);
        }

        if (done.Error is not null)
            ExceptionDispatchInfo.Throw(done.Error);
        int s = _options.ImageSize;
        batch = new Batch(
            tensor(done.Images, new long[] { done.Count, 3, s, s }, device: _device),
            tensor(done.Labels, new long[] { done.Count }, device: _device));
        return true;
    }

    private bool IsReady(long batchNumber) => _pending.TryGetValue(batchNumber, out var b) && b.Remaining == 0;

    private void WorkerLoop()
    {
        while (true)
        {
            SampleClaim claim;
            lock (_gate)
            {
                while (!_disposed && !CanClaim())
                    Monitor.Wait(_gate);
                if (_disposed) return;
                claim = Claim();
            }
            Prepare(claim);
            lock (_gate)
            {
                if (--claim.Batch.Remaining == 0)
                    Monitor.PulseAll(_gate);
            }
        }
    }

    private bool CanClaim() =>
        _nextBatchToClaim < _nextBatchToReturn + _options.PrefetchBatches &&
        !(_singlePass && _nextBatchToClaim >= BatchesPerEpoch);

    /// <summary>Takes the next sample slot of the stream. Called under the lock.</summary>
    private SampleClaim Claim()
    {
        long b = _nextBatchToClaim;
        long epoch = b / BatchesPerEpoch;
        int first = (int)(b % BatchesPerEpoch) * _options.BatchSize;
        if (!_pending.TryGetValue(b, out var pending))
        {
            int count = Math.Min(_options.BatchSize, _shard.Length - first);
            pending = new PendingBatch(count, _options.ImageSize);
            _pending[b] = pending;
        }
        int slot = _nextSampleToClaim;
        if (++_nextSampleToClaim == pending.Count)
        {
            _nextBatchToClaim++;
            _nextSampleToClaim = 0;
        }
        return new SampleClaim(pending, slot, epoch, first + slot, EpochOrder(epoch));
    }

    /// <summary>Positions of this rank's shard in the order of <paramref name="epoch"/>. Called under the lock.</summary>
    private int[] EpochOrder(long epoch)
    {
        if (_epochOrders.TryGetValue(epoch, out var order)) return order;
        order = Enumerable.Range(0, _shard.Length).ToArray();
        if (_options.Shuffle)
            SampleRandom.ForShuffle(_options.Seed, epoch).Shuffle(order);
        // Only the epoch being consumed and those being prefetched are needed.
        foreach (var old in _epochOrders.Keys.Where(e => e < epoch - 1).ToList())
            _epochOrders.Remove(old);
        _epochOrders[epoch] = order;
        return order;
    }

    private void Prepare(SampleClaim claim)
    {
        var batch = claim.Batch;
        int s = _options.ImageSize;
        try
        {
            // A bad image is replaced by the next good one of the epoch order: the choice depends only
            // on which files are bad, so the stream stays deterministic.
            for (int attempt = 0; attempt < claim.Order.Length; attempt++)
            {
                int sourceIndex = _shard[claim.Order[(claim.Position + attempt) % claim.Order.Length]];
                RgbImage image;
                try
                {
                    image = _source.Load(sourceIndex);
                }
                catch (ImageDecodeException e) when (_options.SkipBadImages)
                {
                    lock (_gate)
                    {
                        var bad = new BadImage(e.Path, e.Reason);
                        if (_badImages.TryAdd(sourceIndex, bad)) _unreported.Add(bad);
                    }
                    continue;
                }
                var random = SampleRandom.ForSample(_options.Seed, claim.Epoch, sourceIndex);
                ImagePreprocessor.ToModelInput(image, s, _options.RandomCrop, _options.RandomFlip, random, batch.Images.AsSpan(claim.Slot * 3 * s * s, 3 * s * s));
                batch.Labels[claim.Slot] = _source.LabelOf(sourceIndex);
                return;
            }
            throw new DatasetException($"All {claim.Order.Length} images of rank {_options.Rank}'s shard failed to decode (first: {BadImages.FirstOrDefault()}).");
        }
        catch (Exception e)
        {
            lock (_gate) batch.Error ??= e;
        }
    }

    /// <summary>Stops the workers and drops prepared batches.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            Monitor.PulseAll(_gate);
        }
        foreach (var worker in _workers)
            worker.Join();
        _pending.Clear();
    }

    private sealed class PendingBatch(int count, int imageSize)
    {
        public int Count { get; } = count;
        public float[] Images { get; } = new float[count * 3 * imageSize * imageSize];
        public long[] Labels { get; } = new long[count];
        public int Remaining { get; set; } = count;
        public Exception? Error { get; set; }
    }

    private readonly record struct SampleClaim(PendingBatch Batch, int Slot, long Epoch, int Position, int[] Order);
}
