using System.Text.Json.Serialization;

namespace GuidedDiffusion.Training;

/// <summary>The precision to train in (<c>precision</c>), spelled as on the command line and in the sidecar.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TrainingPrecision>))]
public enum TrainingPrecision
{
    /// <summary>float32 throughout.</summary>
    [JsonStringEnumMemberName("fp32")]
    Fp32,

    /// <summary>float16 trunk with float32 master weights and dynamic loss scaling (GPU only in practice).</summary>
    [JsonStringEnumMemberName("fp16")]
    Fp16,

    /// <summary>bfloat16 trunk with float32 master weights (needs native bf16 kernels on the CPU).</summary>
    [JsonStringEnumMemberName("bf16")]
    Bf16,

    /// <summary>bf16 where the CPU has native bf16 kernels, fp32 elsewhere.</summary>
    [JsonStringEnumMemberName("auto")]
    Auto,
}

/// <summary>What a <see cref="TrainingPrecision"/> means for the model.</summary>
public static class TrainingPrecisions
{
    /// <summary>The spellings <c>precision</c> accepts, in enum order.</summary>
    public static IReadOnlyList<string> Names => Spellings.Of<TrainingPrecision>();

    /// <summary>The precision spelled <paramref name="name"/>.</summary>
    /// <exception cref="ConfigurationException">An unknown name; the message lists the allowed ones.</exception>
    public static TrainingPrecision Parse(string name) => Spellings.Parse<TrainingPrecision>(name, "precision", "precision");

    /// <summary>The dtype the trunk is converted to (fp16, bf16), or null when it stays in float32.</summary>
    /// <exception cref="ArgumentException"><see cref="TrainingPrecision.Auto"/>, which must be resolved first.</exception>
    public static TorchSharp.torch.ScalarType? TrunkType(this TrainingPrecision precision) => precision switch
    {
        TrainingPrecision.Fp32 => null,
        TrainingPrecision.Fp16 => TorchSharp.torch.ScalarType.Float16,
        TrainingPrecision.Bf16 => TorchSharp.torch.ScalarType.BFloat16,
        _ => throw new ArgumentException("auto must be resolved to a precision first (PrecisionPolicy.Resolve).", nameof(precision)),
    };
}
