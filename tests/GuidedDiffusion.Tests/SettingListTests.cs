using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Tests;

public class SettingListTests
{
    [Theory]
    [InlineData("1,2,2", "1,2,2")]
    [InlineData(" 1, 2 ,3 ", "1,2,3")]
    [InlineData("0.5,1,1.5", "0.5,1,1.5")]
    [InlineData("", "")]
    public void Parse_ReadsTheOriginalsSpelling_AndSpellsItBack(string text, string spelled)
    {
        var list = SettingList<double>.Parse(text, "channel_mult");
        Assert.Equal(spelled, list.ToString());
        Assert.Equal(list, SettingList<double>.Parse(list.ToString(), "channel_mult"));
    }

    [Theory]
    [InlineData("1,x", "'x' is not a number")]
    [InlineData("1,99999999999", "'99999999999' is out of range")]
    [InlineData("16,0", "every value must be positive, got '0'")]
    [InlineData("16,-8", "every value must be positive, got '-8'")]
    [InlineData("16,8.5", "'8.5' is not a number")]
    public void Parse_BadValue_NamesTheSettingAndTheValue(string text, string expected)
    {
        var error = Assert.Throws<ConfigurationException>(() => SettingList<int>.Parse(text, "attention_resolutions"));
        Assert.Equal("attention_resolutions", error.Setting);
        Assert.Contains($"attention_resolutions '{text}': {expected}", error.Message);
    }

    [Fact]
    public void Lists_CompareByValue_SoRecordsHoldingThemDo()
    {
        SettingList<int> a = [16, 8], b = [16, 8], c = [8, 16];
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, c);
        Assert.Equal(new ClassifierConfig { AttentionResolutions = [16, 8] }, new ClassifierConfig { AttentionResolutions = SettingList<int>.Parse("16, 8", "x") });
        Assert.NotEqual(new ClassifierConfig { ChannelMult = [1, 2] }, new ClassifierConfig { ChannelMult = [1, 2, 2] });
    }

    [Fact]
    public void Sidecars_KeepTheCommaSeparatedString()
    {
        var config = new DiffusionModelConfig { ChannelMult = [1, 2, 2], AttentionResolutions = [] };
        var json = JsonSerializer.Serialize(config, CheckpointManifest.JsonOptions);
        Assert.Contains("\"channel_mult\": \"1,2,2\"", json);
        Assert.Contains("\"attention_resolutions\": \"\"", json);
        Assert.Equal(config, JsonSerializer.Deserialize<DiffusionModelConfig>(json, CheckpointManifest.JsonOptions));
    }

    [Fact]
    public void OldDiffusionSidecar_WithAnEmptyChannelMult_LoadsAsTheImageSizesDefault()
    {
        // Sidecars written before channel_mult was typed spell "use the default" as "".
        var config = JsonSerializer.Deserialize<DiffusionModelConfig>("""{ "image_size": 32, "channel_mult": "", "attention_resolutions": "16,8" }""",
            CheckpointManifest.JsonOptions)!;
        Assert.Equal(new double[] { 1, 2, 2 }, config.ResolveChannelMult());
        Assert.Equal(new[] { 2, 4 }, config.ResolveAttentionDownsampleFactors());
    }

    [Theory]
    [InlineData("""{ "attention_resolutions": "16,x" }""")]
    [InlineData("""{ "attention_resolutions": [16, 8] }""")]
    public void SidecarWithABadList_IsAJsonError(string json)
    {
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<DiffusionModelConfig>(json, CheckpointManifest.JsonOptions));
    }
}
