using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Support;
using GuidedDiffusion.Training;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Training;

public class ClassifierTrainerTests
{
    private static ClassifierConfig Tiny => new()
    {
        ImageSize = 16,
        Width = 32,
        Depth = 1,
        ChannelMult = [1, 2],
        AttentionResolutions = [8],
        NumHeadChannels = 32,
        NumClasses = 6,
    };

    private static (Tensor Images, Tensor Labels) Batch(int n)
    {
        var g = new Generator(11);
        return (rand(new long[] { n, 3, 16, 16 }, generator: g) * 2 - 1, randint(0, 6, new long[] { n }, generator: g));
    }

    private static EncoderUNet Model(ClassifierConfig config)
    {
        manual_seed(5);
        return new EncoderUNet(config);
    }

    [Fact]
    public void Microbatches_GiveTheFullBatchGradients()
    {
        using var scope = NewDisposeScope();
        var (images, labels) = Batch(8);
        var diffusion = TrainingFixtures.Diffusion.Build();
        Tensor[] Gradients(int? microbatch)
        {
            var model = Model(Tiny);
            var trainer = new ClassifierTrainer(model, diffusion, new TrainingConfig { Seed = 2, Data = new() { BatchSize = 8 }, Optimizer = new() { Microbatch = microbatch } }, 6);
            trainer.ForwardBackward(images, labels);
            return model.parameters().Select(p => p.grad!.clone()).ToArray();
        }
        var full = Gradients(null); // no split
        foreach (var micro in new[] { 2, 3 })
        {
            var split = Gradients(micro);
            for (int i = 0; i < full.Length; i++)
                // float32 sums in another order: 1e-5 relative to the largest gradient entry.
                Reference.AssertClose(split[i], full[i], 0, 1e-5 * full[i].abs().max().item<float>() + 1e-9, $"microbatch {micro}, parameter {i}");
        }
    }

    [Fact]
    public void Fp16_OverflowSkipsTheStepAndLowersTheLossScale()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny);
        model.ConvertToFp16();
        var trainer = new ClassifierTrainer(model, TrainingFixtures.Diffusion.Build(), new TrainingConfig { Data = new() { BatchSize = 4 }, Objective = new() { Noised = false }, Precision = new() { Mode = TrainingPrecision.Fp16 } }, 6);
        var messages = new List<string>();
        trainer.Message += messages.Add;
        Assert.Equal(16.0, trainer.Precision.LgLossScale);
        var before = model.parameters().Select(p => p.detach().clone()).ToArray();

        var (images, labels) = Batch(4);
        Assert.False(trainer.Step(images * 1e6, labels)); // overflows float16 in the trunk
        Assert.Equal(15.0, trainer.Precision.LgLossScale);
        Assert.Contains(messages, m => m.StartsWith("Found NaN, decreased lg_loss_scale to 15"));
        var after = model.parameters().ToArray();
        for (int i = 0; i < before.Length; i++) Assert.True(before[i].equal(after[i]).all().item<bool>(), "a skipped step must not change weights");

        Assert.True(trainer.Step(images, labels));
        Assert.Equal(15.001, trainer.Precision.LgLossScale!.Value, 9);
        Assert.Equal(2, trainer.CompletedSteps);
    }

    [Fact]
    public void Bf16_TrainsWithFloat32Masters()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny);
        model.ConvertTrunkTo(ScalarType.BFloat16);
        var trainer = new ClassifierTrainer(model, TrainingFixtures.Diffusion.Build(), new TrainingConfig { Data = new() { BatchSize = 4 }, Precision = new() { Mode = TrainingPrecision.Bf16 } }, 6);
        Assert.All(trainer.Precision.MasterParameters, p => Assert.Equal(ScalarType.Float32, p.dtype));
        Assert.Contains(model.parameters(), p => p.dtype == ScalarType.BFloat16);
        var (images, labels) = Batch(4);
        Assert.True(trainer.Step(images, labels));
        var state = trainer.MasterStateDict();
        Assert.All(state, kv => Assert.Equal(ScalarType.Float32, kv.Value.dtype));
    }

    [Fact]
    public void Ema_TracksTheParameters()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny);
        var trainer = new ClassifierTrainer(model, TrainingFixtures.Diffusion.Build(), new TrainingConfig { Data = new() { BatchSize = 4 }, Optimizer = new() { EmaRate = "0.5" } }, 6);
        var before = model.parameters().Select(p => p.detach().clone()).ToArray();
        var (images, labels) = Batch(4);
        trainer.Step(images, labels);
        var ema = trainer.Emas.Single();
        var now = model.parameters().ToArray();
        for (int i = 0; i < now.Length; i++)
            Reference.AssertClose(ema.Values[i], (before[i] + now[i].detach()) / 2, 1e-6, 1e-7, $"ema {i}");
    }

    [Fact]
    public void GradClip_BoundsTheAppliedGradientNorm()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny);
        var trainer = new ClassifierTrainer(model, TrainingFixtures.Diffusion.Build(), new TrainingConfig { Data = new() { BatchSize = 4 }, Optimizer = new() { GradClip = 1e-3 } }, 6);
        var (images, labels) = Batch(4);
        Assert.True(trainer.Step(images, labels));
        // The step logged the unclipped norm; the gradients AdamW consumed (left on the fp32 masters) are clipped.
        Assert.True(trainer.Metrics.Snapshot()["grad_norm"] > 1e-2, "the test needs a gradient well above the clip norm");
        Assert.True(PrecisionPolicy.GlobalNorm(trainer.Precision.MasterParameters.Select(p => p.grad)) <= 1e-3 * 1.0001);
    }

    [Theory]
    [InlineData(false, 100, 3e-4)]
    [InlineData(true, 0, 3e-4)]
    [InlineData(true, 75, 7.5e-5)]
    public void LearningRate_AnnealsLinearlyToZero(bool anneal, long step, double expected)
    {
        Assert.Equal(expected, new LearningRateSchedule(3e-4, anneal, 100).At(step), 12);
        // ... and the trainer's optimizer steps with it at that global step.
        using var scope = NewDisposeScope();
        var config = new TrainingConfig { Data = new() { BatchSize = 4 }, Length = new() { AnnealLr = anneal, Iterations = 100 }, Optimizer = new() { Lr = 3e-4 } };
        using var trainer = new ClassifierTrainer(Model(Tiny), TrainingFixtures.Diffusion.Build(), config, 6) { CompletedSteps = step };
        var (images, labels) = Batch(4);
        trainer.Step(images, labels);
        Assert.All(trainer.Optimizer.ParamGroups, group => Assert.Equal(expected, group.LearningRate, 12));
    }
}
