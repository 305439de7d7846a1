using GuidedDiffusion.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// How parameters, gradients and the loss are kept for a precision mode. The optimizer always works on
/// <see cref="MasterParameters"/> (float32). In fp32 they are the model's own parameters; in fp16/bf16 the
/// model's trunk runs in half precision and float32 copies are the masters, as in the original's
/// MixedPrecisionTrainer. fp16 adds dynamic loss scaling; bf16 needs none (same exponent range as fp32).
/// </summary>
public abstract class PrecisionPolicy : IDisposable
{
    private protected PrecisionPolicy(IReadOnlyList<Parameter> modelParameters) => ModelParameters = modelParameters;

    /// <summary>The model's parameters (some possibly half precision).</summary>
    public IReadOnlyList<Parameter> ModelParameters { get; }

    /// <summary>float32 parameters the optimizer updates.</summary>
    public abstract IReadOnlyList<Parameter> MasterParameters { get; }

    /// <summary>log2 of the loss scale (fp16 only).</summary>
    public virtual double? LgLossScale => null;

    /// <summary>The factor the loss is multiplied by before backward.</summary>
    public virtual double LossScale => 1.0;

    /// <summary>
    /// Moves the model's gradients onto the masters, unscaled. Returns (grad_norm, param_norm) of the
    /// masters, or null when the gradients overflowed and the step must be skipped.
    /// </summary>
    public abstract (double GradNorm, double ParamNorm)? PrepareStep();

    /// <summary>After the optimizer step: copies masters back into the model and updates the loss scale.</summary>
    public abstract void CompleteStep();

    /// <summary>Zeroes the model's gradients (before a new step's backward).</summary>
    public void ZeroModelGrads()
    {
        foreach (var p in ModelParameters)
            if (p.grad is { } g) { using (g) g.zero_(); }
    }

    /// <summary>sqrt(Σ‖t‖²) over tensors, computed in float32 per tensor as the original does.</summary>
    public static double GlobalNorm(IEnumerable<Tensor?> tensors)
    {
        double sum = 0;
        using var scope = NewDisposeScope();
        foreach (var t in tensors)
        {
            if (t is null) continue;
            double n = t.to_type(ScalarType.Float32).norm().item<float>();
            sum += n * n;
        }
        return Math.Sqrt(sum);
    }

    /// <summary>
    /// Turns <c>--precision</c> into the precision to train in on the CPU <paramref name="cpu"/>: <c>auto</c> is
    /// bf16 where oneDNN has native bf16 kernels (AVX512-BF16 or AMX) and fp32 elsewhere; bf16 without them is
    /// refused unless <paramref name="allowSlowBf16"/>, because libtorch then runs bf16 convolutions and matmuls
    /// through reference loops, 10–200× slower than fp32 — a silent slowdown no user asks for.
    /// </summary>
    /// <param name="requested">fp32, fp16, bf16 or auto.</param>
    /// <param name="allowSlowBf16"><c>--allow_slow_bf16</c>: run bf16 even without native kernels.</param>
    /// <param name="cpu">The CPU's features (<see cref="CpuFeatures.Current"/>; tests inject others).</param>
    public static TrainingPrecision Resolve(TrainingPrecision requested, bool allowSlowBf16, CpuFeatures cpu)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        return requested switch
        {
            TrainingPrecision.Auto => cpu.HasNativeBf16 ? TrainingPrecision.Bf16 : TrainingPrecision.Fp32,
            TrainingPrecision.Bf16 when !cpu.HasNativeBf16 && !allowSlowBf16 => throw new ConfigurationException("precision",
                $"bf16 on this CPU ({cpu.Model}: {cpu.Summary}) would be 10–200× slower than fp32, not faster: without "
                + "AVX512-BF16 or AMX libtorch has no bf16 kernels and runs reference loops (a 2048² matmul at 0.3 GFLOP/s "
                + $"instead of ~100). Use {SettingText.Ref("precision")} fp32 (or auto), or {SettingText.Ref("allow_slow_bf16")} True to run bf16 anyway."),
            _ => requested,
        };
    }

    /// <summary>Creates the policy for <c>--precision</c> <paramref name="name"/> over the model's (already converted) parameters.</summary>
    /// <param name="name">fp32, bf16 or fp16 (auto: as <see cref="Resolve"/> picks for this CPU).</param>
    /// <param name="modelParameters">The model's parameters.</param>
    /// <param name="initialLgLossScale">fp16: log2 of the first loss scale (default <see cref="DynamicLossScaler.InitialLgLossScale"/>).</param>
    /// <param name="scaleGrowth">fp16: lg increase per good step (default <see cref="DynamicLossScaler.DefaultGrowth"/>).</param>
    public static PrecisionPolicy Create(TrainingPrecision name, IReadOnlyList<Parameter> modelParameters, double? initialLgLossScale = null, double scaleGrowth = DynamicLossScaler.DefaultGrowth) => (name == TrainingPrecision.Auto ? Resolve(name, false, CpuFeatures.Current) : name) switch
    {
        TrainingPrecision.Fp32 => new Fp32Policy(modelParameters),
        TrainingPrecision.Bf16 => new MasterWeightsPolicy(modelParameters, scaler: null),
        TrainingPrecision.Fp16 => new MasterWeightsPolicy(modelParameters, new DynamicLossScaler(initialLgLossScale ?? DynamicLossScaler.InitialLgLossScale, scaleGrowth)),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    /// <inheritdoc />
    public virtual void Dispose() { }

    private sealed class Fp32Policy : PrecisionPolicy
    {
        public Fp32Policy(IReadOnlyList<Parameter> parameters) : base(parameters) { }

        public override IReadOnlyList<Parameter> MasterParameters => ModelParameters;

        public override (double GradNorm, double ParamNorm)? PrepareStep() =>
            (GlobalNorm(ModelParameters.Select(p => p.grad)), GlobalNorm(ModelParameters));

        public override void CompleteStep() { }
    }

    private sealed class MasterWeightsPolicy : PrecisionPolicy
    {
        private readonly Parameter[] _masters;
        private readonly DynamicLossScaler? _scaler;

        public MasterWeightsPolicy(IReadOnlyList<Parameter> parameters, DynamicLossScaler? scaler) : base(parameters)
        {
            _scaler = scaler;
            _masters = parameters.Select(p =>
            {
                using var noGrad = no_grad();
                return new Parameter(p.detach().to_type(ScalarType.Float32).clone(), requires_grad: true);
            }).ToArray();
        }

        public override IReadOnlyList<Parameter> MasterParameters => _masters;

        public override double? LgLossScale => _scaler?.LgLossScale;

        public override double LossScale => _scaler?.Scale ?? 1.0;

        public override (double GradNorm, double ParamNorm)? PrepareStep()
        {
            using var noGrad = no_grad();
            for (int i = 0; i < _masters.Length; i++)
            {
                var g = ModelParameters[i].grad;
                var masterGrad = g is null ? zeros_like(_masters[i]) : g.to_type(ScalarType.Float32);
                _masters[i].grad = masterGrad;
            }
            double gradNorm = GlobalNorm(_masters.Select(m => m.grad)) / LossScale;
            if (_scaler is not null && (double.IsNaN(gradNorm) || double.IsInfinity(gradNorm)))
            {
                _scaler.Update(overflow: true);
                foreach (var m in _masters) m.grad = null;
                return null;
            }
            if (LossScale != 1.0)
                foreach (var m in _masters) m.grad!.mul_(1.0 / LossScale);
            return (gradNorm, GlobalNorm(_masters));
        }

        public override void CompleteStep()
        {
            using var noGrad = no_grad();
            for (int i = 0; i < _masters.Length; i++)
            {
                ModelParameters[i].copy_(_masters[i]);
                _masters[i].grad = null;
            }
            _scaler?.Update(overflow: false);
        }

        /// <summary>Restores the loss scale on resume.</summary>
        public void SetLgLossScale(double lg) { if (_scaler is not null) _scaler.LgLossScale = lg; }

        public override void Dispose()
        {
            foreach (var m in _masters) m.Dispose();
        }
    }

    /// <summary>Restores log2 of the loss scale (resume); ignored without loss scaling.</summary>
    public void RestoreLgLossScale(double lg)
    {
        if (this is MasterWeightsPolicy m) m.SetLgLossScale(lg);
    }
}
