using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Decoding;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
using SkiaSharp;

namespace GuidedDiffusion.Tests.Data;

public class BadInputTests
{
    private static readonly byte[] GoodPng = TestImages.Png(16, 12, (x, y) => new SKColor((byte)(x * 9), (byte)(y * 13), 77));

    public static TheoryData<string, string> BadFiles() => new()
    {
        { "zero.png", "empty" },
        { "text.png", "not a recognised" },
        { "truncated.png", "truncated" },
        { "truncated.jpg", "truncated" },
    };

    private static byte[] Content(string name) => name switch
    {
        "zero.png" => [],
        "text.png" => "this is not an image\n"u8.ToArray(),
        "truncated.png" => GoodPng[..(GoodPng.Length / 2)],
        "truncated.jpg" => TestImages.Jpeg(64, 48) is var j ? j[..(j.Length / 2)] : [],
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void Decode_BadFile_FailsNamingPathAndReason(string name, string reason)
    {
        var path = Path.Combine(TestImages.TempDir(), name);
        File.WriteAllBytes(path, Content(name));
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(path));
        Assert.Equal(path, e.Path);
        Assert.Contains(path, e.Message);
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void Loader_BadImage_FailsByDefault_NamingTheFile()
    {
        var dir = TestImages.TempDir();
        File.WriteAllBytes(Path.Combine(dir, "a_1.png"), GoodPng);
        File.WriteAllBytes(Path.Combine(dir, "b_1.png"), []);
        var source = new ImageFolderSource(dir);
        using var loader = new DataLoader(source, new DataOptions { ImageSize = 8, BatchSize = 2, NumWorkers = 1 });
        var e = Assert.Throws<ImageDecodeException>(() => loader.Next());
        Assert.EndsWith("b_1.png", e.Path);
    }

    [Fact]
    public void Loader_SkipBadImages_SkipsAndCountsThem()
    {
        var dir = TestImages.TempDir();
        foreach (var name in new[] { "a_1.png", "a_2.png", "b_1.png", "b_2.png" })
            File.WriteAllBytes(Path.Combine(dir, name), GoodPng);
        File.WriteAllBytes(Path.Combine(dir, "a_3.png"), []);
        File.WriteAllBytes(Path.Combine(dir, "b_3.png"), GoodPng[..40]);
        var source = new ImageFolderSource(dir);
        using var loader = new DataLoader(source, new DataOptions { ImageSize = 8, BatchSize = 3, NumWorkers = 2, SkipBadImages = true });
        for (int i = 0; i < 6; i++)
        {
            using var batch = loader.Next();
            Assert.Equal(3, batch.Count);
        }
        Assert.Equal(2, loader.BadImageCount);
        Assert.Contains(loader.BadImages, b => b.Name.EndsWith("a_3.png", StringComparison.Ordinal) && b.Reason.Contains("empty"));
        Assert.Contains(loader.BadImages, b => b.Name.EndsWith("b_3.png", StringComparison.Ordinal));
    }

    [Fact]
    public void Folder_Empty_IsAnError()
    {
        var dir = TestImages.TempDir();
        var e = Assert.Throws<DatasetException>(() => new ImageFolderSource(dir));
        Assert.Contains("is empty", e.Message);
        Assert.Contains(dir, e.Message);
    }

    [Fact]
    public void Folder_NoImageFiles_IsAnError_SayingWhatWasFound()
    {
        var dir = TestImages.TempDir();
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "x");
        File.WriteAllText(Path.Combine(dir, "photo.bmp"), "x");
        var e = Assert.Throws<DatasetException>(() => new ImageFolderSource(dir));
        Assert.Contains("2 entries", e.Message);
        Assert.Contains("notes.txt", e.Message);
    }

    [Fact]
    public void Folder_SingleClass_IsAnError_NamingIt()
    {
        var dir = TestImages.TempDir();
        File.WriteAllBytes(Path.Combine(dir, "cat_1.png"), GoodPng);
        File.WriteAllBytes(Path.Combine(dir, "cat_2.png"), GoodPng);
        var e = Assert.Throws<DatasetException>(() => new ImageFolderSource(dir));
        Assert.Contains("only one class, 'cat'", e.Message);
        Assert.Contains("2 images", e.Message);
    }

    [Fact]
    public void Folder_Missing_IsDirectoryNotFound()
    {
        var dir = Path.Combine(TestImages.TempDir(), "nope");
        var e = Assert.Throws<DirectoryNotFoundException>(() => new ImageFolderSource(dir));
        Assert.Contains(dir, e.Message);
    }
}
