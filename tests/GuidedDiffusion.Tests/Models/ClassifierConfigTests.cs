using GuidedDiffusion.Cli;
using GuidedDiffusion.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Models;

/// <summary>The classifier flags: the original's defaults, derived arguments, and the configurations it refuses
/// (Reference/models/create_classifier_limits.json) reported as ConfigurationException naming the flag.</summary>
public class ClassifierConfigTests
{
    [Fact]
    public void Defaults_AreTheOriginalClassifierDefaults()
    {
        var config = new ClassifierConfig();
        Assert.Equal(64, config.ImageSize);
        Assert.Equal(3, config.InChannels);
        Assert.Equal(128, config.Width);
        Assert.Equal(2, config.Depth);
        Assert.Equal("32,16,8", config.AttentionResolutions.ToString());
        Assert.True(config.UseScaleShiftNorm);
        Assert.True(config.ResblockUpdown);
        Assert.Equal("attention", config.Pool.ToFlag());
        Assert.False(config.UseFp16);
        Assert.Equal(1000, config.NumClasses);
        Assert.Equal(64, config.NumHeadChannels);
        Assert.Null(config.ChannelMult);
        Assert.Equal(0.0, config.Dropout);
    }

    [Theory]
    [InlineData(64, new[] { 1.0, 2, 3, 4 }, new[] { 2, 4, 8 })]
    [InlineData(128, new[] { 1.0, 1, 2, 3, 4 }, new[] { 4, 8, 16 })]
    [InlineData(256, new[] { 1.0, 1, 2, 2, 4, 4 }, new[] { 8, 16, 32 })]
    [InlineData(512, new[] { 0.5, 1, 1, 2, 2, 4, 4 }, new[] { 16, 32, 64 })]
    [InlineData(32, new[] { 1.0, 2, 2 }, new[] { 1, 2, 4 })]
    public void Resolve_ChannelMultAndAttentionFactors_ByImageSize(int imageSize, double[] mult, int[] factors)
    {
        var config = new ClassifierConfig { ImageSize = imageSize };
        Assert.Equal(mult, config.ResolveChannelMult());
        Assert.Equal(factors, config.ResolveAttentionDownsampleFactors());
        var options = config.ToOptions();
        Assert.Equal(mult, options.ChannelMult);
        Assert.Equal(factors, options.AttentionResolutions);
    }

    [Fact]
    public void ExplicitChannelMult_OverridesTheDefault_AndChangesTheModel()
    {
        var config = new ClassifierConfig { ImageSize = 28, Width = 64, Depth = 1, AttentionResolutions = [14, 7], ChannelMult = [1, 2, 2], NumClasses = 10 };
        Assert.Equal(new[] { 1.0, 2, 2 }, config.ResolveChannelMult());
        Assert.Equal(new[] { 2, 4 }, config.ResolveAttentionDownsampleFactors());
        using var scope = NewDisposeScope();
        using var model = new EncoderUNet(config);
        using var noGrad = no_grad();
        var logits = model.forward(randn(2, 3, 28, 28), tensor(new long[] { 3, 700 }));
        Assert.Equal(new long[] { 2, 10 }, logits.shape);
        Assert.Equal(new long[] { 128, 7 * 7 + 1 }, model.state_dict()["out.2.positional_embedding"].shape);
    }

    [Fact]
    public void UnsupportedImageSize_WithoutChannelMult_SaysToPassChannelMult()
    {
        var error = Assert.Throws<ConfigurationException>(() => new ClassifierConfig { ImageSize = 48 }.ToOptions());
        Assert.Equal("classifier_channel_mult", error.Setting);
        Assert.Contains("unsupported image size: 48", error.Message);
        Assert.Contains("pass --channel_mult", SettingText.MessageOf(error, OnClassifierTrain));
    }

    [Fact]
    public void Width32_AtImageSize64_IsRefusedLikeTheOriginal_ForHeadChannels()
    {
        // create_classifier: AssertionError "q,k,v channels 96 is not divisible by num_head_channels 64".
        var error = Assert.Throws<ConfigurationException>(() => new ClassifierConfig { Width = 32 }.ToOptions());
        Assert.Equal("classifier_width", error.Setting);
        Assert.Contains("q,k,v channels 96 is not divisible by num_head_channels 64", error.Message);
    }

    [Theory]
    [InlineData(32, 1, "8", 1882568)]
    [InlineData(64, 1, "32,16,8", 7450408)]
    public void ConfigurationsTheOriginalAccepts_HaveItsParameterCount(int width, int depth, string attention, long parameters)
    {
        using var model = new EncoderUNet(new ClassifierConfig { Width = width, Depth = depth, AttentionResolutions = SettingList<int>.Parse(attention, "a") });
        Assert.Equal(parameters, model.parameters().Sum(p => p.numel()));
    }

    [Theory]
    [InlineData(128, 16)]
    [InlineData(512, 32)]
    public void ChannelsNotDivisibleBy32_AreRefused_NamingTheWidth(int imageSize, int width)
    {
        // create_classifier: ValueError "num_channels must be divisible by num_groups" from GroupNorm(32, C).
        var error = Assert.Throws<ConfigurationException>(() => new ClassifierConfig { ImageSize = imageSize, Width = width }.ToOptions());
        Assert.Equal("classifier_width", error.Setting);
        Assert.Contains("GroupNorm(32)", error.Message);
    }

    [Fact]
    public void UnknownPool_ListsTheAllowedValues()
    {
        var error = Assert.Throws<ConfigurationException>(() => ClassifierPools.Parse("max"));
        Assert.Equal("classifier_pool", error.Setting);
        Assert.Contains("'max'", error.Message);
        Assert.Contains("adaptive, attention, spatial, spatial_v2", error.Message);
    }

    [Fact]
    public void AttentionPool_WithoutHeadChannels_IsRefused()
    {
        var options = new EncoderUNetOptions
        {
            ImageSize = 32,
            InChannels = 3,
            ModelChannels = 32,
            OutChannels = 4,
            NumResBlocks = 1,
            AttentionResolutions = Array.Empty<int>(),
            ChannelMult = new[] { 1.0, 1 },
            Pool = ClassifierPool.Attention,
        };
        var error = Assert.Throws<ConfigurationException>(() => new EncoderUNet(options));
        Assert.Equal("num_head_channels", error.Setting);
    }

    [Theory]
    [InlineData(64, "32,16,4", new[] { 2, 4 }, new[] { 4 })]
    [InlineData(64, "24", new[] { 2 }, new[] { 24 })]
    [InlineData(28, "32,16,8", new[] { 1 }, new[] { 32, 16, 8 })]
    [InlineData(64, "32,16,8", new[] { 2, 4, 8 }, new int[0])]
    public void AttentionResolutionNeverReached_IsAccepted_LikeTheOriginal_WithAWarningNamingIt(int imageSize, string attention, int[] factors, int[] warned)
    {
        // The original: attention_ds = [image_size // res]; a level gets attention when its ds is in that list.
        var config = new ClassifierConfig { ImageSize = imageSize, AttentionResolutions = SettingList<int>.Parse(attention, "a") };
        Assert.Equal(factors, config.ToOptions().AttentionResolutions);
        var warnings = config.AttentionWarnings();
        Assert.Equal(warned.Length, warnings.Count);
        foreach (var (resolution, warning) in warned.Zip(warnings))
            Assert.Contains($"--classifier_attention_resolutions {resolution} is never reached", SettingText.Render(warning, CliErrors.Flag));
    }

    /// <summary>How classifier-train spells the settings (a classifier's num_classes is its own setting, typed --num_classes there).</summary>
    private static readonly Func<string, string> OnClassifierTrain =
        CliErrors.SpellingFor(GuidedDiffusion.Cli.Program.BuildRoot().Subcommands.Single(c => c.Name == "classifier-train"));

    [Theory]
    [InlineData("image_size", "--image_size")]
    [InlineData("classifier_width", "--classifier_width")]
    [InlineData("classifier_depth", "--classifier_depth")]
    [InlineData("classifier_num_classes", "--num_classes")]
    [InlineData("classifier_num_head_channels", "--num_head_channels")]
    [InlineData("in_channels", "--in_channels")]
    public void NonPositiveValues_AreRefused_NamingTheFlag(string setting, string flag)
    {
        var config = setting switch
        {
            "image_size" => new ClassifierConfig { ImageSize = 0 },
            "classifier_width" => new ClassifierConfig { Width = -128 },
            "classifier_depth" => new ClassifierConfig { Depth = -1 },  // 0 is allowed, as in the original
            "classifier_num_classes" => new ClassifierConfig { NumClasses = 0 },
            "classifier_num_head_channels" => new ClassifierConfig { NumHeadChannels = 0 },
            _ => new ClassifierConfig { InChannels = 0 },
        };
        var error = Assert.Throws<ConfigurationException>(config.Validate);
        Assert.Equal(setting, error.Setting);
        Assert.Matches($"^{System.Text.RegularExpressions.Regex.Escape(flag)}[: ]", SettingText.MessageOf(error, OnClassifierTrain));
    }

    [Theory]
    [InlineData("1,x,2")]
    [InlineData("1,0,2")]
    [InlineData("1,-2")]
    public void BadChannelMult_IsRefused(string mult)
    {
        var error = Assert.Throws<ConfigurationException>(() => new ClassifierConfig { ChannelMult = SettingList<double>.Parse(mult, "channel_mult") }.ToOptions());
        Assert.Equal("channel_mult", error.Setting);
    }

    [Theory]
    [InlineData(1.0, 0.0, 2.0)]
    [InlineData(1.0, -2.0)]
    [InlineData(1.0, double.NaN)]
    public void NonPositiveChannelMultBuiltInCSharp_IsRefusedWhenTheModelIsBuilt(params double[] mult)
    {
        // A list written as a collection expression has not been parsed: the build checks it.
        var error = Assert.Throws<ConfigurationException>(() => new ClassifierConfig { ChannelMult = [.. mult] }.ToOptions());
        Assert.Equal("classifier_channel_mult", error.Setting);
        Assert.Contains("every value must be positive", error.Message);
    }

    [Fact]
    public void DropoutOutsideZeroToOne_IsRefused()
    {
        var error = Assert.Throws<ConfigurationException>(() => new ClassifierConfig { Dropout = 1.0 }.ToOptions());
        Assert.Equal("dropout", error.Setting);
    }

    [Fact]
    public void ImageSizeNotDivisibleByTheDownsampling_IsRefused()
    {
        var error = Assert.Throws<ConfigurationException>(() =>
            new ClassifierConfig { ImageSize = 28, ChannelMult = [1, 1, 2, 2], AttentionResolutions = [14] }.ToOptions());
        Assert.Equal("image_size", error.Setting);
    }

    [Fact]
    public void ClassifierPools_RoundTripFlagValues()
    {
        foreach (var value in ClassifierPools.FlagValues)
            Assert.Equal(value, ClassifierPools.Parse(value).ToFlag());
    }

    [Fact]
    public void Forward_ImageOfAnotherSize_ExplainsTheAttentionPoolSize()
    {
        using var scope = NewDisposeScope();
        using var model = new EncoderUNet(new ClassifierConfig { ImageSize = 32, Width = 64, Depth = 1, AttentionResolutions = [8], NumClasses = 3 });
        using var noGrad = no_grad();
        var error = Assert.Throws<ArgumentException>(() => model.forward(zeros(1, 3, 64, 64), zeros(1, dtype: ScalarType.Int64)));
        Assert.Contains("image_size", error.Message);
    }
}
