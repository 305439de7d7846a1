using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Tests.Support;
using TorchSharp;

namespace GuidedDiffusion.Tests.Data;

public class ListingTests
{
    private static string Rel(string root, string path) => Path.GetRelativePath(root, path).Replace(Path.DirectorySeparatorChar, '/');

    /// <summary>
    /// The original's listing of images/tree without its hidden entries (".dot_5.png"), which we skip on purpose
    /// (issue 15: AppleDouble "._x.png" files made a class "."): the kept indices, their order, the classes of
    /// what is left, and each kept file's label in those classes.
    /// </summary>
    private static (int[] Kept, string[] Order, string[] Classes, int[] Labels) TreeWithoutHidden(System.Text.Json.JsonElement json)
    {
        var listed = json.GetProperty("listed_in_order").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var names = json.GetProperty("class_name_of_each").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var kept = Enumerable.Range(0, listed.Length).Where(i => !listed[i].Split('/').Any(part => part.StartsWith('.'))).ToArray();
        var classes = kept.Select(i => names[i]).Distinct().Order(StringComparer.Ordinal).ToArray();
        return (kept, kept.Select(i => listed[i]).ToArray(), classes, kept.Select(i => Array.IndexOf(classes, names[i])).ToArray());
    }

    [Fact]
    public void Listing_MatchesOriginalOrderClassesAndLabels_tree()
    {
        var json = Reference.Json("images/tree.json");
        var root = Reference.PathOf("images/tree");
        var source = new ImageFolderSource(root);

        // The reference itself lists the hidden file first; without it the rest is the original's exactly.
        Assert.Equal(".dot_5.png", json.GetProperty("listed_in_order")[0].GetString());
        var (_, expectedOrder, expectedClasses, expectedLabels) = TreeWithoutHidden(json);
        Assert.Equal(expectedOrder, source.Files.Select(f => Rel(root, f)).ToArray());
        Assert.Equal(expectedClasses, source.Classes.Names);
        Assert.Equal(expectedLabels, Enumerable.Range(0, source.Count).Select(source.LabelOf).ToArray());
    }

    [Fact]
    public void Listing_FolderNamedLikeAnImage_IsDescendedInto_tree_trap()
    {
        // The original took the folder "folder.png" for an image and crashed; we list what is inside it.
        var root = Reference.PathOf("images/tree_trap");
        var source = new ImageFolderSource(root);
        Assert.Equal(new[] { "folder.png/inner_1.png", "ok_1.png" }, source.Files.Select(f => Rel(root, f)).ToArray());
        Assert.Equal(new[] { "inner", "ok" }, source.Classes.Names);
    }

    [Fact]
    public void TreeBatch_CenterCrop32_MatchesOriginalLoadData()
    {
        var json = Reference.Json("images/tree.json");
        var root = Reference.PathOf("images/tree");
        var source = new ImageFolderSource(root);
        var options = new DataOptions { ImageSize = 32, BatchSize = source.Count, NumWorkers = 2 };
        using var batch = DataLoader.EnumerateOnce(source, options).Single();

        var reference = Reference.Tensors("images/tree_batch.safetensors");
        try
        {
            var expectedImages = reference.First(kv => kv.Value.dtype == torch.ScalarType.Float32).Value;
            var (kept, listed, _, labels) = TreeWithoutHidden(json);
            Assert.Equal(labels.Select(l => (long)l).ToArray(), batch.Labels.data<long>().ToArray());
            Assert.Equal(new[] { kept.Length }.Concat(expectedImages.shape.Skip(1).Select(d => (int)d)).Select(d => (long)d).ToArray(), batch.Images.shape);
            for (int i = 0; i < listed.Length; i++)
            {
                var expected = expectedImages[kept[i]].data<float>().ToArray();
                var actual = batch.Images[i].data<float>().ToArray();
                // Exact for JPEG too: SkiaSharp's bundled libjpeg-turbo decodes like Debian's libjpeg under PIL
                // (the reference calls JPEG pixels non-portable in general; relax here if a libjpeg update differs).
                double tolerance = 0;
                Reference.AssertClose(actual.Select(v => (double)v).ToArray(), expected.Select(v => (double)v).ToArray(), 0, tolerance, listed[i]);
            }
        }
        finally
        {
            foreach (var t in reference.Values) t.Dispose();
        }
    }

    [Fact]
    public void LabelRuleFolder_UsesTopLevelSubFolder()
    {
        var root = TestImages.TempDir();
        var png = TestImages.Png(4, 4, (_, _) => SkiaSharp.SKColors.Red);
        Directory.CreateDirectory(Path.Combine(root, "dog", "closeups"));
        Directory.CreateDirectory(Path.Combine(root, "cat"));
        File.WriteAllBytes(Path.Combine(root, "dog", "a_1.png"), png);
        File.WriteAllBytes(Path.Combine(root, "dog", "closeups", "b_2.png"), png);
        File.WriteAllBytes(Path.Combine(root, "cat", "c_3.png"), png);

        var source = new ImageFolderSource(root, LabelRule.Folder);
        Assert.Equal(new[] { "cat", "dog" }, source.Classes.Names);
        Assert.Equal(new[] { 0, 1, 1 }, Enumerable.Range(0, 3).Select(source.LabelOf).ToArray());

        var prefix = new ImageFolderSource(root, LabelRule.Prefix);
        Assert.Equal(new[] { "a", "b", "c" }, prefix.Classes.Names);
    }

    [Fact]
    public void Validation_UsesTrainingClassMap_AndNamesUnknownClass()
    {
        var png = TestImages.Png(4, 4, (_, _) => SkiaSharp.SKColors.Blue);
        var train = TestImages.TempDir();
        foreach (var name in new[] { "ant_1.png", "bee_1.png", "cat_1.png" })
            File.WriteAllBytes(Path.Combine(train, name), png);
        var val = TestImages.TempDir();
        File.WriteAllBytes(Path.Combine(val, "cat_9.png"), png);

        var trainSource = new ImageFolderSource(train);
        var valSource = new ImageFolderSource(val, classes: trainSource.Classes);
        // Alone, "cat" would be label 0 (and a single class); with the training map it is 2.
        Assert.Equal(2, valSource.LabelOf(0));

        File.WriteAllBytes(Path.Combine(val, "dog_1.png"), png);
        var e = Assert.Throws<DatasetException>(() => new ImageFolderSource(val, classes: trainSource.Classes));
        Assert.Contains("'dog'", e.Message);
        Assert.Contains("dog_1.png", e.Message);
    }
}
