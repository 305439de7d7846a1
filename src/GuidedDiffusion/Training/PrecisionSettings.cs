namespace GuidedDiffusion.Training;

/// <summary>
/// The precision section of the training settings: the number format of the trunk and fp16's loss scaling.
/// Defaults are classifier_train.py's; <see cref="ImageTrainDefaults"/> has image_train.py's first loss scale.
/// </summary>
public sealed record PrecisionSettings
{
    /// <summary><c>precision</c>: fp32, fp16 (dynamic loss scaling), bf16 (trunk in bfloat16) or auto (bf16 where the CPU has native bf16). Default fp32.</summary>
    public TrainingPrecision Mode { get; init; } = TrainingPrecision.Fp32;

    /// <summary><c>allow_slow_bf16</c>: train in bf16 even on a CPU without native bf16 kernels (refused otherwise). Default false.</summary>
    public bool AllowSlowBf16 { get; init; }

    /// <summary><c>fp16_scale_growth</c>: lg_loss_scale increase per fp16 step without overflow. Default 1e-3.</summary>
    public double Fp16ScaleGrowth { get; init; } = DynamicLossScaler.DefaultGrowth;

    /// <summary>log2 of the first fp16 loss scale (no flag): 16 in classifier_train.py, 20 in image_train.py (fp16_util's default).</summary>
    public double InitialLgLossScale { get; init; } = DynamicLossScaler.InitialLgLossScale;

    /// <summary>image_train.py's: the first loss scale 2^20.</summary>
    public static PrecisionSettings ImageTrainDefaults { get; } = new() { InitialLgLossScale = 20.0 };

    /// <summary>Precisions <c>precision</c> accepts.</summary>
    public static IReadOnlyList<string> Names => TrainingPrecisions.Names;

    /// <summary>
    /// These settings with <see cref="Mode"/> as the run will train: fp16 when the model asks for it (its use_fp16
    /// flag, whatever <see cref="Mode"/> says), else auto picked for <paramref name="cpu"/>, and bf16 refused where it
    /// would be slow unless <see cref="AllowSlowBf16"/>.
    /// </summary>
    /// <exception cref="ConfigurationException">bf16 without native kernels and without <see cref="AllowSlowBf16"/>.</exception>
    public PrecisionSettings ResolvedFor(bool useFp16, Runtime.CpuFeatures cpu) =>
        this with { Mode = useFp16 ? TrainingPrecision.Fp16 : PrecisionPolicy.Resolve(Mode, AllowSlowBf16, cpu) };

    /// <summary>Rejects values that cannot work, naming the setting.</summary>
    /// <exception cref="ConfigurationException">A negative or infinite growth.</exception>
    public void Validate()
    {
        if (!(Fp16ScaleGrowth >= 0) || double.IsInfinity(Fp16ScaleGrowth)) throw new ConfigurationException("fp16_scale_growth", $"must be a finite number ≥ 0, got {Fp16ScaleGrowth}.");
    }
}
