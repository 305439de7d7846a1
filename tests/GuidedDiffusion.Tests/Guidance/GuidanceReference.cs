using System.Collections.Concurrent;
using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Models;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Guidance;

/// <summary>Builds the diffusion UNets and the guidance classifier of Reference/guidance.</summary>
internal static class GuidanceReference
{
    public const string CondUNet = "unet16_cond_ss_updown";
    public const string UncondUNet = "unet32_uncond_noss_neworder";

    public static JsonElement UNetCase(string name) => Reference.Json($"guidance/unet/{name}/case.json");

    /// <summary>UNetOptions from create_model_passes (the original UNetModel arguments).</summary>
    public static UNetOptions OptionsFrom(JsonElement args) => new()
    {
        ImageSize = args.GetProperty("image_size").GetInt32(),
        InChannels = args.GetProperty("in_channels").GetInt32(),
        ModelChannels = args.GetProperty("model_channels").GetInt32(),
        OutChannels = args.GetProperty("out_channels").GetInt32(),
        NumResBlocks = args.GetProperty("num_res_blocks").GetInt32(),
        AttentionResolutions = args.GetProperty("attention_resolutions").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
        Dropout = args.GetProperty("dropout").GetDouble(),
        ChannelMult = args.GetProperty("channel_mult").EnumerateArray().Select(e => e.GetDouble()).ToArray(),
        NumClasses = args.GetProperty("num_classes").ValueKind == JsonValueKind.Null ? null : args.GetProperty("num_classes").GetInt32(),
        NumHeads = args.GetProperty("num_heads").GetInt32(),
        NumHeadChannels = args.GetProperty("num_head_channels").GetInt32(),
        NumHeadsUpsample = args.GetProperty("num_heads_upsample").GetInt32(),
        UseScaleShiftNorm = args.GetProperty("use_scale_shift_norm").GetBoolean(),
        ResblockUpdown = args.GetProperty("resblock_updown").GetBoolean(),
        UseNewAttentionOrder = args.GetProperty("use_new_attention_order").GetBoolean(),
    };

    /// <summary>DiffusionModelConfig from a case's or manifest's flags (the original's argparse names).</summary>
    public static DiffusionModelConfig ConfigFromFlags(JsonElement flags) => new()
    {
        ImageSize = flags.GetProperty("image_size").GetInt32(),
        NumChannels = flags.GetProperty("num_channels").GetInt32(),
        NumResBlocks = flags.GetProperty("num_res_blocks").GetInt32(),
        NumHeads = flags.GetProperty("num_heads").GetInt32(),
        NumHeadsUpsample = flags.GetProperty("num_heads_upsample").GetInt32(),
        NumHeadChannels = flags.GetProperty("num_head_channels").GetInt32(),
        AttentionResolutions = SettingList<int>.Parse(flags.GetProperty("attention_resolutions").GetString(), "attention_resolutions"),
        ChannelMult = SettingList<double>.Parse(flags.GetProperty("channel_mult").GetString(), "channel_mult"),
        Dropout = flags.GetProperty("dropout").GetDouble(),
        ClassCond = flags.GetProperty("class_cond").GetBoolean(),
        UseCheckpoint = flags.GetProperty("use_checkpoint").GetBoolean(),
        UseScaleShiftNorm = flags.GetProperty("use_scale_shift_norm").GetBoolean(),
        ResblockUpdown = flags.GetProperty("resblock_updown").GetBoolean(),
        UseFp16 = flags.GetProperty("use_fp16").GetBoolean(),
        UseNewAttentionOrder = flags.GetProperty("use_new_attention_order").GetBoolean(),
        LearnSigma = flags.GetProperty("learn_sigma").GetBoolean(),
    };

    /// <summary>The small UNet with its reference weights, in eval mode.</summary>
    public static UNetModel LoadUNet(string name) => LoadUNetFrom($"guidance/unet/{name}");

    /// <summary>
    /// A UNet from a reference folder holding <c>case.json</c> (with <c>create_model_passes</c>) and
    /// <c>state_dict.safetensors</c> (the layout of guidance/unet and losses/unet), in eval mode.
    /// </summary>
    public static UNetModel LoadUNetFrom(string folder)
    {
        var model = new UNetModel(OptionsFrom(Reference.Json($"{folder}/case.json").GetProperty("create_model_passes")));
        StateDictIO.Load(model, Reference.PathOf($"{folder}/state_dict.safetensors"));
        model.eval();
        return model;
    }

    public static JsonElement ClassifierCase => Reference.Json("guidance/guide/classifier/case.json");

    /// <summary>The guidance classifier (5 classes, image 16) with its reference weights, in eval mode.</summary>
    public static EncoderUNet LoadClassifier()
    {
        var model = new EncoderUNet(ReferenceModels.OptionsFrom(ClassifierCase.GetProperty("constructor")));
        StateDictIO.Load(model, Reference.PathOf("guidance/guide/classifier/state_dict.safetensors"));
        model.eval();
        return model;
    }

    /// <summary>The diffusion flags of a guide case as a DiffusionConfig.</summary>
    public static DiffusionConfig DiffusionFrom(JsonElement flags) => new()
    {
        DiffusionSteps = flags.GetProperty("steps").GetInt32(),
        NoiseSchedule = BetaSchedule.Parse(flags.GetProperty("noise_schedule").GetString()!),
        TimestepRespacing = flags.GetProperty("timestep_respacing").GetString()!,
        LearnSigma = flags.GetProperty("learn_sigma").GetBoolean(),
        PredictXstart = flags.GetProperty("predict_xstart").GetBoolean(),
        RescaleTimesteps = flags.GetProperty("rescale_timesteps").GetBoolean(),
    };

    /// <summary>|a − e| ≤ tol·(|e| + max|e|): relative per element with a floor at the tensor's scale.</summary>
    public static void AssertCloseScaled(Tensor actual, Tensor expected, double tol, string what)
    {
        double scale = expected.abs().max().ToDouble();
        Reference.AssertClose(actual, expected, tol, tol * Math.Max(scale, 1e-12), what);
    }
}

/// <summary>The models of the guidance cases, loaded once for all tests (they are only read).</summary>
internal static class GuidanceModels
{
    private static readonly Lazy<UNetModel> CondUNetLazy = new(() => GuidanceReference.LoadUNet(GuidanceReference.CondUNet));
    private static readonly Lazy<EncoderUNet> ClassifierLazy = new(GuidanceReference.LoadClassifier);
    private static readonly object Gate = new();

    public static UNetModel CondUNet => CondUNetLazy.Value;
    public static EncoderUNet Classifier => ClassifierLazy.Value;

    /// <summary>Models are shared across tests that xunit may run in parallel: serialise their use.</summary>
    public static T Run<T>(Func<T> action)
    {
        lock (Gate) return action();
    }
}
