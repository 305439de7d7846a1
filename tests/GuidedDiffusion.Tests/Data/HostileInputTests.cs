using GuidedDiffusion.Cli;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
using SkiaSharp;

namespace GuidedDiffusion.Tests.Data;

/// <summary>Decompression bombs, symlink loops, hidden files and a file given as a folder (issue 15).</summary>
public class HostileInputTests
{
    private static readonly byte[] GoodPng = TestImages.Png(16, 12, (x, y) => new SKColor((byte)(x * 9), (byte)(y * 13), 77));

    /// <summary>A PNG whose header claims <paramref name="side"/>² RGB pixels but holds a few bytes of data.</summary>
    public static byte[] BombPng(int side) => TestImages.RawPng(side, side, 8, 2, new byte[64]);

    [Fact]
    public void Bomb_100000Squared_IsRefusedBeforeAllocating_NamingTheFile()
    {
        // Before the fix this header made the 32-bit buffer size wrap and the decoder write past it (exit 139).
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(BombPng(100_000), "bomb.png"));
        Assert.Contains("bomb.png", e.Message);
        Assert.Contains("100000×100000", e.Message);
        Assert.Contains("decompression bomb", e.Message);
        Assert.Contains("--max_image_pixels", CliErrors.Describe(e));
    }

    [Fact]
    public void Limit_FollowsPil_WarnAboveIt_RefuseAboveTwice()
    {
        // 16×12 = 192 pixels: within the limit 192, a warning under 100 (< 2×), refused under 95 (2×95 < 192).
        var warnings = new List<string>();
        void Warn(string line) => warnings.Add(line);
        Assert.Equal(16, ImageDecoder.Decode(GoodPng, "ok.png", maxPixels: 192, Warn).Width);
        Assert.DoesNotContain(warnings, w => w.Contains("ok.png"));
        Assert.Equal(16, ImageDecoder.Decode(GoodPng, "big.png", maxPixels: 100, Warn).Width);
        Assert.Contains(warnings, w => w.Contains("big.png") && w.Contains("decompression bomb"));
        Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(GoodPng, "huge.png", maxPixels: 95));
        Assert.Equal(89_478_485, ImageDecoder.DefaultMaxImagePixels);
    }

    [Fact]
    public void Bomb_UnderSkipBadImages_IsSkippedAndCounted()
    {
        var dir = TestImages.TempDir();
        foreach (var name in new[] { "a_1.png", "a_2.png", "b_1.png", "b_2.png" })
            File.WriteAllBytes(Path.Combine(dir, name), GoodPng);
        File.WriteAllBytes(Path.Combine(dir, "b_3.png"), BombPng(100_000));
        using var loader = new DataLoader(new ImageFolderSource(dir), new DataOptions { ImageSize = 8, BatchSize = 5, NumWorkers = 1, SkipBadImages = true });
        using (var batch = loader.Next()) Assert.Equal(5, batch.Count);
        var bad = Assert.Single(loader.BadImages);
        Assert.EndsWith("b_3.png", bad.Name);
        Assert.Contains("decompression bomb", bad.Reason);
        Assert.Single(loader.TakeNewBadImages());
        using (loader.Next()) { }
        Assert.Empty(loader.TakeNewBadImages()); // named once, not again in the next epoch
    }

    [Fact]
    public void SymlinkLoop_ListsEachImageOnce()
    {
        var dir = TestImages.TempDir();
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        File.WriteAllBytes(Path.Combine(dir, "a_1.png"), GoodPng);
        File.WriteAllBytes(Path.Combine(dir, "sub", "b_1.png"), GoodPng);
        Directory.CreateSymbolicLink(Path.Combine(dir, "loop"), ".");
        Directory.CreateSymbolicLink(Path.Combine(dir, "sub", "up"), "..");
        Directory.CreateSymbolicLink(Path.Combine(dir, "twin"), Path.Combine(dir, "sub"));
        var files = ImageFolderListing.List(dir);
        Assert.Equal(new[] { Path.Combine(dir, "a_1.png"), Path.Combine(dir, "sub", "b_1.png") }, files);
    }

    [Fact]
    public void HiddenFilesAndFolders_AreIgnored_SoAppleDoubleMakesNoClass()
    {
        var dir = TestImages.TempDir();
        File.WriteAllBytes(Path.Combine(dir, "cat_1.png"), GoodPng);
        File.WriteAllBytes(Path.Combine(dir, "dog_1.png"), GoodPng);
        File.WriteAllBytes(Path.Combine(dir, "._cat_1.png"), [0, 5, 22, 7]); // macOS AppleDouble
        Directory.CreateDirectory(Path.Combine(dir, ".thumbs"));
        File.WriteAllBytes(Path.Combine(dir, ".thumbs", "cow_1.png"), GoodPng);
        var source = new ImageFolderSource(dir);
        Assert.Equal(2, source.Count);
        Assert.Equal(new[] { "cat", "dog" }, source.Classes.Names);
    }

    [Fact]
    public void DataDirThatIsAFile_SaysSo()
    {
        var file = Path.Combine(TestImages.TempDir(), "train.png");
        File.WriteAllBytes(file, GoodPng);
        var e = Assert.Throws<DirectoryNotFoundException>(() => new ImageFolderSource(file));
        Assert.Contains(file, e.Message);
        Assert.Contains("is a file, not a folder", e.Message);
    }
}
