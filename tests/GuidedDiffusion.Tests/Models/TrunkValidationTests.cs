using GuidedDiffusion.Cli;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Tests.Models;

/// <summary>One check of the UNet trunk, naming the setting each argument came from.</summary>
public class TrunkValidationTests
{
    [Fact]
    public void GroupNormWidth_IsNamedAfterEachConfigsFlag()
    {
        // 48 channels at level 0: GroupNorm(32) cannot split them (create_model and create_classifier both fail there).
        var diffusion = Assert.Throws<ConfigurationException>(() => new DiffusionModelConfig { NumChannels = 48 }.ToOptions());
        Assert.Equal("num_channels", diffusion.Setting);
        Assert.Contains("--num_channels 48 × channel_mult 1 = 48 channels at level 0; GroupNorm(32)", CliErrors.Describe(diffusion));

        var classifier = Assert.Throws<ConfigurationException>(() => new ClassifierConfig { Width = 48 }.ToOptions());
        Assert.Equal("classifier_width", classifier.Setting);
        Assert.Contains("--classifier_width 48 × channel_mult 1 = 48 channels at level 0; GroupNorm(32)", CliErrors.Describe(classifier));

        // Options built by hand name the constructor argument.
        var options = new DiffusionModelConfig().ToOptions() with { ModelChannels = 48 };
        Assert.Equal("model_channels", Assert.Throws<ConfigurationException>(options.Validate).Setting);
    }

    [Fact]
    public void ClassifierDepthAndClasses_AreNamedAsFlags()
    {
        Assert.Equal("classifier_depth", Assert.Throws<ConfigurationException>(() => new ClassifierConfig { Depth = -1 }.ToOptions()).Setting);
        new ClassifierConfig { Depth = 0 }.Validate();  // the original trains and saves depth-0 classifiers
        // The classifier's own settings, never the diffusion model's of the same name (a command may have both).
        Assert.Equal("classifier_num_classes", Assert.Throws<ConfigurationException>(() => new ClassifierConfig { NumClasses = -1 }.ToOptions()).Setting);
        Assert.Equal("classifier_num_classes", Assert.Throws<ConfigurationException>(() => new ClassifierConfig { NumClasses = null }.ToOptions()).Setting);
        Assert.Equal("classifier_channel_mult", Assert.Throws<ConfigurationException>(() => new ClassifierConfig { ChannelMult = [1, -2] }.ToOptions()).Setting);
        Assert.Equal("classifier_num_head_channels", Assert.Throws<ConfigurationException>(() => new ClassifierConfig { NumHeadChannels = -3 }.ToOptions()).Setting);
        Assert.Equal("channel_mult", Assert.Throws<ConfigurationException>(() => new DiffusionModelConfig { ChannelMult = [1, -2] }.ToOptions()).Setting);
        new ClassifierConfig { NumClasses = null }.Validate();  // the class count may come later, from the data
    }
}
