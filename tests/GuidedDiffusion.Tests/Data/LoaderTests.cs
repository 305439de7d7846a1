using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Loading;

namespace GuidedDiffusion.Tests.Data;

public class LoaderTests
{
    private static List<(int[] Indices, float[] Images, long[] Labels)> Take(DataLoader loader, int batches)
    {
        var result = new List<(int[], float[], long[])>();
        for (int i = 0; i < batches; i++)
        {
            using var b = loader.Next();
            result.Add((IndexedSource.IndicesOf(b), b.Images.data<float>().ToArray(), b.Labels.data<long>().ToArray()));
        }
        return result;
    }

    [Fact]
    public void Batch_HasContractShapesAndTypes()
    {
        var source = new IndexedSource(20, side: 12);
        using var loader = new DataLoader(source, new DataOptions { ImageSize = 8, BatchSize = 5, NumWorkers = 2 });
        using var batch = loader.Next();
        Assert.Equal(new long[] { 5, 3, 8, 8 }, batch.Images.shape);
        Assert.Equal(TorchSharp.torch.ScalarType.Float32, batch.Images.dtype);
        Assert.Equal(new long[] { 5 }, batch.Labels.shape);
        Assert.Equal(TorchSharp.torch.ScalarType.Int64, batch.Labels.dtype);
        Assert.InRange(batch.Images.min().item<float>(), -1f, 1f);
        Assert.InRange(batch.Images.max().item<float>(), -1f, 1f);
    }

    [Fact]
    public void Stream_IsIdenticalForAnyWorkerCount_GivenTheSeed()
    {
        var source = new IndexedSource(37, side: 11);
        var options = new DataOptions { ImageSize = 8, BatchSize = 4, Seed = 7, PrefetchBatches = 3 };
        List<(int[] Indices, float[] Images, long[] Labels)>? first = null;
        foreach (int workers in new[] { 0, 1, 2, 4 })
        {
            using var loader = new DataLoader(source, options with { NumWorkers = workers });
            var batches = Take(loader, 20);   // crosses two epoch boundaries (9 batches per epoch)
            if (first is null) { first = batches; continue; }
            for (int i = 0; i < batches.Count; i++)
            {
                Assert.Equal(first[i].Indices, batches[i].Indices);
                Assert.Equal(first[i].Images, batches[i].Images);
                Assert.Equal(first[i].Labels, batches[i].Labels);
            }
        }

        using var otherSeed = new DataLoader(source, options with { Seed = 8, NumWorkers = 2 });
        Assert.NotEqual(first![0].Indices.Concat(first[1].Indices), Take(otherSeed, 2).SelectMany(b => b.Indices));
    }

    [Fact]
    public void StartBatch_ContinuesTheSameStream_ForResume()
    {
        var source = new IndexedSource(21, side: 10);
        var options = new DataOptions { ImageSize = 8, BatchSize = 4, NumWorkers = 2, Seed = 11 };
        using var fresh = new DataLoader(source, options);
        var all = Take(fresh, 9);
        using var resumed = new DataLoader(source, options with { StartBatch = 6 });
        Assert.Equal(6, resumed.BatchIndex);
        Assert.Equal(1, resumed.Epoch);
        var rest = Take(resumed, 3);
        for (int i = 0; i < 3; i++)
            Assert.Equal(all[6 + i].Images, rest[i].Images);
    }

    [Fact]
    public void Epochs_CoverTheShardOnce_InADifferentOrderEachTime()
    {
        var source = new IndexedSource(24);
        using var loader = new DataLoader(source, new DataOptions { ImageSize = 8, BatchSize = 6, NumWorkers = 2, Seed = 3 });
        var epoch0 = Take(loader, 4).SelectMany(b => b.Indices).ToArray();
        var epoch1 = Take(loader, 4).SelectMany(b => b.Indices).ToArray();
        Assert.Equal(Enumerable.Range(0, 24), epoch0.Order());
        Assert.Equal(Enumerable.Range(0, 24), epoch1.Order());
        Assert.NotEqual(epoch0, epoch1);
        Assert.NotEqual(Enumerable.Range(0, 24), epoch0);
    }

    [Fact]
    public void Labels_FollowTheImages()
    {
        var source = new IndexedSource(30, classes: 4);
        using var loader = new DataLoader(source, new DataOptions { ImageSize = 8, BatchSize = 7, NumWorkers = 2 });
        foreach (var (indices, _, labels) in Take(loader, 5))
            Assert.Equal(indices.Select(i => (long)(i % 4)), labels);
    }

    [Fact]
    public void Sharding_RankTakesEveryWorldSizeTh_File()
    {
        var source = new IndexedSource(10);
        var options = new DataOptions { ImageSize = 8, BatchSize = 5, NumWorkers = 1, WorldSize = 2, Shuffle = false }.WithoutAugmentation();
        using var rank0 = new DataLoader(source, options with { Rank = 0 });
        using var rank1 = new DataLoader(source, options with { Rank = 1 });
        Assert.Equal(new[] { 0, 2, 4, 6, 8 }, Take(rank0, 1)[0].Indices);
        Assert.Equal(new[] { 1, 3, 5, 7, 9 }, Take(rank1, 1)[0].Indices);
    }

    [Fact]
    public void DropLast_False_EmitsThePartialBatch()
    {
        var source = new IndexedSource(10);
        var options = new DataOptions { ImageSize = 8, BatchSize = 4, NumWorkers = 2, Shuffle = false };
        using (var keep = new DataLoader(source, options with { DropLast = false }))
        {
            Assert.Equal(3, keep.BatchesPerEpoch);
            Assert.Equal(new[] { 4, 4, 2, 4 }, Take(keep, 4).Select(b => b.Indices.Length));
        }
        using var drop = new DataLoader(source, options);
        Assert.Equal(2, drop.BatchesPerEpoch);
        Assert.Equal(new[] { 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3 }, Take(drop, 3).SelectMany(b => b.Indices));
    }

    [Fact]
    public void ShardSmallerThanABatch_WithDropLast_IsAnError()
    {
        var e = Assert.Throws<DatasetException>(() => new DataLoader(new IndexedSource(3), new DataOptions { BatchSize = 4, NumWorkers = 0 }));
        Assert.Contains("fewer than one batch", e.Message);
    }

    [Fact]
    public void RandomFlip_FlipsAboutHalf_AndNoAugmentationNeverDoes()
    {
        var source = new IndexedSource(200);
        // Blue is bright on the left of every source image; a flipped sample is bright on the right.
        static int CountFlipped(DataLoader loader)
        {
            using var b = loader.Next();
            var px = b.Images.data<float>().ToArray();
            int flipped = 0;
            for (int i = 0; i < b.Count; i++)
            {
                int blue = i * 3 * 64 + 2 * 64;
                if (px[blue] < px[blue + 7]) flipped++;
            }
            return flipped;
        }
        var options = new DataOptions { ImageSize = 8, BatchSize = 200, NumWorkers = 2, RandomCrop = false };
        using (var flipping = new DataLoader(source, options))
            Assert.InRange(CountFlipped(flipping), 70, 130);
        using var plain = new DataLoader(source, options.WithoutAugmentation());
        Assert.Equal(0, CountFlipped(plain));
    }

    [Fact]
    public void ForValidation_CentreCropsAndFlipsOnlyWhenAsked()
    {
        var training = new DataOptions();
        Assert.False(training.ForValidation().RandomCrop);
        Assert.False(training.ForValidation().RandomFlip);
        Assert.True(training.ForValidation(flip: true).RandomFlip);
    }

    [Fact]
    public void EnumerateOnce_VisitsEveryImageOnceInOrder_WithThePartialBatch()
    {
        var source = new IndexedSource(11, side: 13);
        var batches = DataLoader.EnumerateOnce(source, new DataOptions { ImageSize = 8, BatchSize = 4, NumWorkers = 2, Seed = 5 }).ToList();
        try
        {
            Assert.Equal(new[] { 4, 4, 3 }, batches.Select(b => b.Count));
            Assert.Equal(Enumerable.Range(0, 11), batches.SelectMany(IndexedSource.IndicesOf));
        }
        finally
        {
            batches.ForEach(b => b.Dispose());
        }
    }

    [Fact]
    public void Dispose_StopsWorkers_AndNextThenThrows()
    {
        var loader = new DataLoader(new IndexedSource(50), new DataOptions { ImageSize = 8, BatchSize = 5, NumWorkers = 2 });
        loader.Next().Dispose();
        loader.Dispose();
        Assert.Throws<ObjectDisposedException>(() => loader.Next());
    }
}
