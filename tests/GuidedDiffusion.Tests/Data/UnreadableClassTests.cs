using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
using SkiaSharp;

namespace GuidedDiffusion.Tests.Data;

/// <summary>
/// Under --skip_bad_images a class comes only from images that were actually read (issue 15): a class whose every
/// file is unreadable gets no label, no logit slot and no class-map entry.
/// </summary>
public class UnreadableClassTests
{
    private static readonly byte[] GoodPng = TestImages.Png(16, 12, (x, y) => new SKColor((byte)(x * 9), (byte)(y * 13), 77));

    /// <summary>
    /// A PNG cut short in its pixel data: the header (all a header-only check reads) is intact, so only a full decode
    /// finds it unreadable. Noisy pixels make the compressed data long enough that the cut falls well past the header.
    /// </summary>
    public static byte[] TruncatedPng { get; } = TestImages.Png(64, 64, (x, y) => new SKColor((byte)(x * 37 ^ y * 91), (byte)(x * y * 13), (byte)(x + y * 7))) is var p
        ? p[..(p.Length * 3 / 4)] : [];

    /// <summary>
    /// root/cat: only unreadable files (truncated, garbage, empty); root/dog: two good and one truncated;
    /// root/fox: two good. Returns the folder and the unreadable files.
    /// </summary>
    public static (string Root, string[] Bad) MixedFolder()
    {
        var root = TestImages.TempDir();
        var files = new (string Path, byte[] Content)[]
        {
            ("cat/1.png", TruncatedPng), ("cat/2.jpg", "not an image at all"u8.ToArray()), ("cat/3.png", []),
            ("dog/1.png", GoodPng), ("dog/2.png", TruncatedPng), ("dog/3.png", GoodPng),
            ("fox/1.png", GoodPng), ("fox/2.png", GoodPng),
        };
        foreach (var (path, content) in files)
        {
            var full = Path.Combine(root, path);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllBytes(full, content);
        }
        return (root, new[] { "cat/1.png", "cat/2.jpg", "cat/3.png", "dog/2.png" }.Select(p => Path.Combine(root, p)).ToArray());
    }

    [Fact]
    public void SkipBadImages_AClassWithOnlyUnreadableFiles_IsNoClass_AndTheMixedClassKeepsItsGoodFiles()
    {
        var (root, bad) = MixedFolder();
        var source = new ImageFolderSource(root, LabelRule.Folder, skipBadImages: true);

        Assert.Equal(new[] { "dog", "fox" }, source.Classes.Names);
        Assert.Equal(new[] { "dog/1.png", "dog/3.png", "fox/1.png", "fox/2.png" },
            source.Files.Select(f => Path.GetRelativePath(root, f).Replace(Path.DirectorySeparatorChar, '/')).ToArray());
        Assert.Equal(new[] { 0, 0, 1, 1 }, Enumerable.Range(0, source.Count).Select(source.LabelOf).ToArray());
        // Each unreadable file named once, with the decoder's reason, in listing order.
        Assert.Equal(bad, source.Skipped.Select(s => s.Path).ToArray());
        Assert.Contains("the image data is truncated", source.Skipped[0].Reason); // past the header: a full decode found it
        var warning = Assert.Single(source.Warnings);
        Assert.Contains("class 'cat'", warning);
        Assert.Contains("3 skipped", warning);

        // Every image the loader sees now decodes: nothing is left for it to skip.
        using var loader = new DataLoader(source, new DataOptions { ImageSize = 8, BatchSize = 4, NumWorkers = 1, SkipBadImages = true });
        using (loader.Next()) { }
        Assert.Empty(loader.TakeNewBadImages());
    }

    [Fact]
    public void SkipBadImages_PrefixLabels_AnUnreadableFileMakesNoClassOfItsName()
    {
        var dir = TestImages.TempDir();
        File.WriteAllBytes(Path.Combine(dir, "a_1.png"), GoodPng);
        File.WriteAllBytes(Path.Combine(dir, "b_1.png"), GoodPng);
        File.WriteAllBytes(Path.Combine(dir, "broken.png"), TruncatedPng); // no '_': its own class "broken.png"
        var source = new ImageFolderSource(dir, skipBadImages: true);
        Assert.Equal(new[] { "a", "b" }, source.Classes.Names);
        Assert.Contains("class 'broken.png'", Assert.Single(source.Warnings));
    }

    [Fact]
    public void SkipBadImages_ValidationWithTrainingClasses_DropsUnreadableFilesWithoutWarnings()
    {
        var (root, bad) = MixedFolder();
        var train = new ImageFolderSource(root, LabelRule.Folder, skipBadImages: true);
        var val = new ImageFolderSource(root, LabelRule.Folder, train.Classes, skipBadImages: true);
        // Only readable "cat" files would have been refused as unknown; none is, so the map is the training one.
        Assert.Equal(train.Classes.Names, val.Classes.Names);
        Assert.Equal(bad, val.Skipped.Select(s => s.Path).ToArray());
        Assert.Empty(val.Warnings);
    }

    [Fact]
    public void SkipBadImages_NoReadableImageAtAll_IsANamedError()
    {
        var dir = TestImages.TempDir();
        File.WriteAllBytes(Path.Combine(dir, "a_1.png"), TruncatedPng);
        File.WriteAllBytes(Path.Combine(dir, "b_1.png"), []);
        var e = Assert.Throws<DatasetException>(() => new ImageFolderSource(dir, skipBadImages: true));
        Assert.Contains("none of them could be read", e.Message);
        Assert.Contains(Path.Combine(dir, "a_1.png"), e.Message);
    }

    [Fact]
    public void WithoutSkipBadImages_ClassesComeFromTheListing_AndTheFirstBadFileIsANamedError()
    {
        var (root, _) = MixedFolder();
        var source = new ImageFolderSource(root, LabelRule.Folder);
        Assert.Equal(new[] { "cat", "dog", "fox" }, source.Classes.Names); // nothing decoded up front
        Assert.Empty(source.Skipped);
        using var loader = new DataLoader(source, new DataOptions { ImageSize = 8, BatchSize = 8, NumWorkers = 0, Shuffle = false });
        var e = Assert.Throws<ImageDecodeException>(() => loader.Next());
        Assert.Contains(Path.Combine(root, "cat", "1.png"), e.Message);
    }
}
