using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Models;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Checkpoints;

/// <summary>Checkpoint reading and writing: formats, round trips, all-or-nothing loading, clear errors.</summary>
public sealed class StateDictIOTests : IDisposable
{
    private const string CaseName = "enc64_attention_ss_updown";
    private readonly string folder = Directory.CreateTempSubdirectory("gd-statedict-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Theory]
    [InlineData("state_dict.pt")]
    [InlineData("state_dict.safetensors")]
    public void Load_ReferenceCheckpoint_EqualsSavedValues_AndEnablesGradients(string file)
    {
        using var scope = NewDisposeScope();
        var expected = Reference.Tensors($"models/{CaseName}/state_dict.safetensors");
        using var model = NewModel();
        StateDictIO.Load(model, Reference.PathOf($"models/{CaseName}/{file}"));
        foreach (var (key, value) in model.state_dict())
            Assert.True(value.equal(expected[key]).all().item<bool>(), key);
        Assert.All(model.parameters(), p => Assert.True(p.requires_grad));
    }

    [Theory]
    [InlineData("model000010.pt")]
    [InlineData("model000010.safetensors")]
    public void SaveThenLoad_RoundTripIsBitExact_WithManifestKeysAndNoPrefixes(string file)
    {
        using var scope = NewDisposeScope();
        using var source = ReferenceModels.LoadSmallCase(CaseName);
        string path = Path.Combine(folder, file);
        StateDictIO.Save(source, path);
        Assert.Equal(new[] { file }, Directory.GetFiles(folder).Select(Path.GetFileName));  // no temp file left

        var raw = StateDictIO.Read(path);
        var manifest = ReferenceModels.Manifest(ReferenceModels.CaseJson(CaseName));
        Assert.Equal(manifest.Select(m => m.Key).OrderBy(k => k, StringComparer.Ordinal), raw.Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.All(raw.Values, t => Assert.Equal(ScalarType.Float32, t.dtype));

        using var target = NewModel();
        StateDictIO.Load(target, path);
        var expected = source.state_dict();
        foreach (var (key, value) in target.state_dict())
            Assert.True(value.equal(expected[key]).all().item<bool>(), key);
    }

    [Fact]
    public void Save_OverwritesAnExistingCheckpoint()
    {
        using var scope = NewDisposeScope();
        string path = Path.Combine(folder, "model.pt");
        File.WriteAllText(path, "old");
        using var model = ReferenceModels.LoadSmallCase(CaseName);
        StateDictIO.Save(model, path);
        Assert.Equal(model.state_dict().Count, StateDictIO.Read(path).Count);
    }

    [Fact]
    public void Save_Bf16Trunk_WritesFloat32Tensors()
    {
        using var scope = NewDisposeScope();
        using var model = ReferenceModels.LoadSmallCase(CaseName);
        model.ConvertTrunkTo(ScalarType.BFloat16);
        string path = Path.Combine(folder, "bf16.safetensors");
        StateDictIO.Save(model, path);
        Assert.All(StateDictIO.Read(path).Values, t => Assert.Equal(ScalarType.Float32, t.dtype));
    }

    [Fact]
    public void Load_WrongShape_NamesTheKeyAndBothShapes_AndLoadsNothing()
    {
        using var scope = NewDisposeScope();
        var stateDict = Reference.Tensors($"models/{CaseName}/state_dict.safetensors");
        stateDict["out.2.c_proj.weight"] = zeros(7, 128, 1);
        string path = Path.Combine(folder, "wrong.safetensors");
        StateDictIO.Write(path, stateDict);

        using var model = NewModel();
        var before = model.state_dict().ToDictionary(p => p.Key, p => p.Value.clone());
        var error = Assert.Throws<StateDictMismatchException>(() => StateDictIO.Load(model, path));
        var mismatch = Assert.Single(error.ShapeMismatches);
        Assert.Equal("out.2.c_proj.weight", mismatch.Key);
        Assert.Equal(new long[] { 10, 128, 1 }, mismatch.Expected);
        Assert.Equal(new long[] { 7, 128, 1 }, mismatch.Actual);
        Assert.Contains("out.2.c_proj.weight: model [10, 128, 1], checkpoint [7, 128, 1]", error.Message);
        Assert.Contains(path, error.Message);
        foreach (var (key, value) in model.state_dict())
            Assert.True(value.equal(before[key]).all().item<bool>(), $"{key} changed by a failed load");
    }

    [Fact]
    public void Load_MissingAndUnexpectedKeys_AreAllListed()
    {
        using var scope = NewDisposeScope();
        var stateDict = Reference.Tensors($"models/{CaseName}/state_dict.safetensors");
        stateDict.Remove("time_embed.0.bias");
        stateDict.Remove("out.2.positional_embedding");
        stateDict["module.extra.weight"] = zeros(3);
        stateDict["label_emb.weight"] = zeros(3);
        string path = Path.Combine(folder, "keys.pt");
        StateDictIO.Write(path, stateDict);

        using var model = NewModel();
        var error = Assert.Throws<StateDictMismatchException>(() => StateDictIO.Load(model, path));
        Assert.Equal(new[] { "time_embed.0.bias", "out.2.positional_embedding" }, error.MissingKeys);
        Assert.Equal(new[] { "label_emb.weight", "module.extra.weight" }, error.UnexpectedKeys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.Empty(error.ShapeMismatches);
        foreach (var key in error.MissingKeys.Concat(error.UnexpectedKeys))
            Assert.Contains(key, error.Message);
    }

    [Theory]
    [InlineData("absent.pt")]
    [InlineData("absent.safetensors")]
    public void Load_NonexistentFile_NamesTheFile(string file)
    {
        string path = Path.Combine(folder, file);
        using var model = NewModel();
        var error = Assert.Throws<CheckpointException>(() => StateDictIO.Load(model, path));
        Assert.Contains(path, error.Message);
        Assert.Equal(path, error.FilePath);
    }

    [Theory]
    [InlineData("corrupt.pt")]
    [InlineData("corrupt.safetensors")]
    public void Load_CorruptFile_NamesTheFile(string file)
    {
        string path = Path.Combine(folder, file);
        File.WriteAllBytes(path, Enumerable.Range(0, 200).Select(i => (byte)(i * 37)).ToArray());
        using var model = NewModel();
        var error = Assert.Throws<CheckpointException>(() => StateDictIO.Load(model, path));
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void Load_UnknownExtension_ListsSupportedFormats()
    {
        using var model = NewModel();
        var error = Assert.Throws<CheckpointException>(() => StateDictIO.Load(model, Path.Combine(folder, "model.ckpt")));
        Assert.Contains(".safetensors", error.Message);
        Assert.Contains(".pt", error.Message);
    }

    private static EncoderUNet NewModel() =>
        new(ReferenceModels.OptionsFrom(ReferenceModels.CaseJson(CaseName).GetProperty("constructor_args")));

    [Theory]
    [InlineData(new byte[] { 0x23, 0x08, 0x10, 0x29 }, "shorter than the 8-byte header length")]
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0, (byte)'{', (byte)'}' }, "header claims 2147483647 bytes")]
    public void Load_SafetensorsHeaderLongerThanTheFile_FailsFast_WithoutAllocatingIt(byte[] content, string expected)
    {
        // Found by fuzzing (fuzz/crashes/safetensors): before, the 4-byte file took 9 s and 2 GB of memory.
        string path = Path.Combine(folder, "short.safetensors");
        File.WriteAllBytes(path, content);
        var error = Assert.Throws<CheckpointException>(() => StateDictIO.Read(path));
        Assert.Contains(expected, error.Message);
        Assert.Contains(path, error.Message);
    }
}
