using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Evaluation;
using GuidedDiffusion.Tests.Support;
using GuidedDiffusion.Training;
using GuidedDiffusion.Adversarial;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Training;

/// <summary>ClassifierTrainer with <see cref="TrainingConfig.Adversarial"/>: what the update and the metrics see.</summary>
public class AdversarialTrainerTests
{
    private static readonly GaussianDiffusion Diffusion = TrainingFixtures.Diffusion.Build();

    private static ClassifierConfig Tiny => TrainedColoursFixture.TinyConfig with { NumClasses = 6 };

    private static EncoderUNet Model(ClassifierConfig config)
    {
        manual_seed(5);
        return new EncoderUNet(config);
    }

    private static Tensor Images(int n) => rand([n, 3, 32, 32], generator: new Generator(11)) * 2 - 1;

    /// <summary>The classes the model predicts for clean images at t = 0: every sample starts correct, so every one is attacked.</summary>
    private static Tensor Predictions(nn.Module<Tensor, Tensor, Tensor> model, Tensor images)
    {
        using var noGrad = no_grad();
        return model.forward(images, zeros(images.shape[0], dtype: ScalarType.Int64)).argmax(-1);
    }

    [Fact]
    public void AttackSteps0_TrainsBitForBitLikeThePlainTrainer()
    {
        using var scope = NewDisposeScope();
        // Dropout on, noised, microbatches and EMA: any extra draw from the generator or change of input would show.
        var config = new TrainingConfig { Seed = 2, Data = new() { BatchSize = 4 }, Optimizer = new() { Microbatch = 2, EmaRate = "0.9" } };
        var images = Images(4);
        var labels = randint(0, 6, [4], generator: new Generator(12));
        (Tensor[] Parameters, Dictionary<string, double> Metrics) Train(TrainingConfig training)
        {
            var model = Model(Tiny with { Dropout = 0.1 });
            var trainer = new ClassifierTrainer(model, Diffusion, training, 6);
            for (int i = 0; i < 3; i++)
            {
                trainer.Step(images, labels);
                trainer.Evaluate(images, labels);
            }
            return (model.parameters().Select(p => p.detach().clone()).Concat(trainer.Emas[0].Values).ToArray(), trainer.Metrics.Snapshot());
        }
        var plain = Train(config);
        var attacked = Train(config with { Objective = config.Objective with { Adversarial = new L2PgdOptions { Steps = 0 } } });
        for (int i = 0; i < plain.Parameters.Length; i++)
            Assert.True(plain.Parameters[i].equal(attacked.Parameters[i]).all().item<bool>(), $"parameter or EMA {i} differs");
        foreach (var (key, value) in plain.Metrics)
            Assert.Equal(value, attacked.Metrics[key]);
        // Without steps nothing succeeds, and the robust validation pass is the clean one.
        Assert.DoesNotContain(AdversarialMetrics.PerturbationKey("train"), attacked.Metrics.Keys);
        Assert.Equal(attacked.Metrics["val_acc@1"], attacked.Metrics["val_robust_acc@1"]);
    }

    [Fact]
    public void UpdateGradient_IsThatOfTheAttackedBatchOnly()
    {
        using var scope = NewDisposeScope();
        var options = new L2PgdOptions { Eps = 1, Steps = 3 };
        var images = Images(4);
        var model = Model(Tiny);
        var labels = Predictions(model, images);
        var trainer = new ClassifierTrainer(model, Diffusion, new TrainingConfig { Data = new() { BatchSize = 4 }, Objective = new() { Noised = false, Adversarial = options }, Optimizer = new() { Microbatch = 2 } }, 6);
        trainer.ForwardBackward(images, labels);
        var gradients = model.parameters().Select(p => p.grad!.clone()).ToArray();

        // By hand on an identical model: attack both microbatches first, then start from zero gradients and backpropagate
        // the usual loss of the attacked inputs alone.
        var copy = Model(Tiny);
        copy.train();
        var attack = new L2PgdAttack(copy, options, Diffusion);
        var t = zeros(2, dtype: ScalarType.Int64);
        var attacked = new[] { 0, 2 }.Select(start => attack.Run(images.narrow(0, start, 2), labels.narrow(0, start, 2), t).Adversarial).ToArray();
        Assert.True(attacked.All(a => a.flatten(1).norm(1).gt(0).all().item<bool>()), "every sample should have been attacked");
        foreach (var p in copy.parameters()) p.grad = null;
        for (int i = 0; i < 2; i++)
            (nn.functional.cross_entropy(copy.forward(attacked[i], t), labels.narrow(0, 2 * i, 2)) * 0.5).backward();
        var expected = copy.parameters().Select(p => p.grad!).ToArray();
        for (int i = 0; i < expected.Length; i++)
            // The same float32 operations in the same order: equal up to 1e-6 of the largest entry.
            Reference.AssertClose(gradients[i], expected[i], 0, 1e-6 * expected[i].abs().max().item<float>() + 1e-12, $"parameter {i}");
    }

    /// <summary>Records the model's train/eval mode at every forward pass.</summary>
    private sealed class ModeRecorder : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly EncoderUNet inner;

        public ModeRecorder(EncoderUNet model) : base(nameof(ModeRecorder))
        {
            inner = model;
            RegisterComponents();
        }

        public List<bool> Modes { get; } = [];

        public override Tensor forward(Tensor x, Tensor t)
        {
            Modes.Add(training);
            return inner.forward(x, t);
        }
    }

    [Fact]
    public void AttackAndPass_RunInTheSameTrainOrEvalMode()
    {
        using var scope = NewDisposeScope();
        var images = Images(4);
        var model = new ModeRecorder(Model(Tiny));
        var labels = Predictions(model, images);
        var training = new TrainingConfig { Data = new() { BatchSize = 4 }, Objective = new() { Noised = false, Adversarial = new L2PgdOptions { Eps = 5, Steps = 3 } }, Optimizer = new() { Microbatch = 2 } };
        var trainer = new ClassifierTrainer(model, Diffusion, training, 6);
        model.Modes.Clear();
        trainer.ForwardBackward(images, labels);
        // Per microbatch at least one attack forward and the update's.
        Assert.True(model.Modes.Count >= 4, $"{model.Modes.Count} forward passes");
        Assert.All(model.Modes, training => Assert.True(training, "a training-step forward ran in eval mode"));

        model.Modes.Clear();
        trainer.Evaluate(images, labels);
        // Clean pass, attack and robust pass, per microbatch.
        Assert.True(model.Modes.Count >= 6, $"{model.Modes.Count} forward passes");
        Assert.All(model.Modes, training => Assert.False(training, "a validation forward ran in train mode"));
        Assert.True(model.training);
    }

    [Fact]
    public void Metrics_RobustValidationPerQuartile_AndTheSizeOfSuccessfulAttacks()
    {
        using var scope = NewDisposeScope();
        var images = Images(8);
        var model = Model(Tiny);
        var labels = Predictions(model, images);
        var options = new L2PgdOptions { Eps = 20 };
        var trainer = new ClassifierTrainer(model, Diffusion, new TrainingConfig { Data = new() { BatchSize = 8 }, Objective = new() { Noised = false, Adversarial = options } }, 6);
        trainer.ForwardBackward(images, labels);
        trainer.Evaluate(images, labels);
        var metrics = trainer.Metrics.Snapshot();
        Assert.Equal(1.0, metrics["val_acc@1"]);
        // train_* are measured on the attacked batch, as in the reference.
        Assert.True(metrics["train_acc@1"] < 1.0, "an attack of radius 20 should fool an untrained classifier at least once");
        Assert.True(metrics["val_robust_acc@1"] < 1.0, "an attack of radius 20 should fool an untrained classifier at least once");
        // t = 0 lies in quartile 0; the per-quartile key follows the original's naming.
        Assert.Equal(metrics["val_robust_acc@1"], metrics["val_robust_acc@1_q0"]);
        foreach (var prefix in new[] { "train", AdversarialMetrics.RobustValidationPrefix })
            Assert.InRange(metrics[AdversarialMetrics.PerturbationKey(prefix)], 1e-6, options.Eps + 1e-5);
        foreach (var key in metrics.Keys)
            Assert.Contains(key, AdversarialMetrics.AddTo(MetricKeys.All(6, true, false), 6, true));
    }

    [Theory]
    [InlineData("bf16")]
    [InlineData("fp16")]
    public void HalfPrecisionTrunk_AttackStepsAlongTheGradient_AndTrains(string spelling)
    {
        using var scope = NewDisposeScope();
        var precision = TrainingPrecisions.Parse(spelling);
        var images = Images(4);
        var model = Model(Tiny);
        model.ConvertTrunkTo(precision.TrunkType()!.Value);
        var labels = Predictions(model, images);
        var options = new L2PgdOptions { Eps = 10, Steps = 1, StepSize = 0.5 };
        var trainer = new ClassifierTrainer(model, Diffusion, new TrainingConfig { Data = new() { BatchSize = 4 }, Objective = new() { Noised = false, Adversarial = options }, Precision = new() { Mode = precision } }, 6);

        // With the loss scale the trainer passes (fp16: 2^16), the input gradient neither underflows nor overflows:
        // every sample moves by exactly one step.
        var result = new L2PgdAttack(model, options, Diffusion).Run(images, labels, zeros(4, dtype: ScalarType.Int64), trainer.Precision.LossScale);
        Reference.AssertClose(result.PerturbationNorm, full(4, 0.5f), 1e-4, 0, $"{precision} step lengths");

        Assert.True(trainer.Step(images, labels));
        Assert.True(double.IsFinite(trainer.Metrics.Snapshot()["train_loss"]));
    }
}
