using System.Runtime.InteropServices;
using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Data;
using GuidedDiffusion.Tests.Training;
using GuidedDiffusion.Training;
using TorchSharp;
using static TorchSharp.torch;
using ClassifierSampleFixture = GuidedDiffusion.Tests.Guidance.ClassifierSampleCommandTests;

namespace GuidedDiffusion.Tests.Devices;

/// <summary>
/// Checkpoints, images and settings for running every job once: the tiny reference UNet (16², class-conditional,
/// learn_sigma) and the 5-class guidance classifier, each with a sidecar, and a folder of 8 generated 16² images in
/// two classes.
/// </summary>
public sealed class DeviceJobsFixture : IDisposable
{
    public DeviceJobsFixture()
    {
        Folder = TestImages.TempDir();
        DataDir = TrainingFixtures.ImageFolder(2, 4, size: 16, seed: 9);
        UNetPath = Path.Combine(Folder, "model000001.pt");
        using (var unet = Guidance.GuidanceReference.LoadUNet(Guidance.GuidanceReference.CondUNet)) StateDictIO.Save(unet, UNetPath);
        WriteSidecar(UNetPath, new CheckpointManifest { DiffusionModel = ClassifierSampleFixture.TinyUNet, Diffusion = Diffusion });
        ClassifierPath = Path.Combine(Folder, "model000002.pt");
        using (var classifier = Guidance.GuidanceReference.LoadClassifier()) StateDictIO.Save(classifier, ClassifierPath);
        WriteSidecar(ClassifierPath, new CheckpointManifest { Classifier = ClassifierSampleFixture.TinyClassifier, Diffusion = Diffusion });
        // Samples for sample-eval, made on the CPU before any test changes torch's default device.
        SamplesPath = new GuidedSamplingJob(Sampling(Path.Combine(Folder, "samples"))).Run().NpzPath;
    }

    /// <summary>The noise process both checkpoints record (1000 linear steps, learned sigma).</summary>
    public static DiffusionConfig Diffusion => new() { LearnSigma = true };

    public string Folder { get; }
    public string DataDir { get; }
    public string UNetPath { get; }
    public string ClassifierPath { get; }
    public string SamplesPath { get; }

    public ClassifierSource Classifier => new() { Path = ClassifierPath };

    public DiffusionModelSource DiffusionModel => new() { Path = UNetPath };

    /// <summary>Two guided DDIM samples over two steps.</summary>
    public GuidedSamplingOptions Sampling(string outDir) => new()
    {
        Model = DiffusionModel with { Diffusion = Diffusion with { TimestepRespacing = "ddim2" } },
        ClassifierPath = ClassifierPath,
        NumSamples = 2,
        BatchSize = 2,
        UseDdim = true,
        ClassifierScale = 10,
        Seed = 4,
        OutDir = outDir,
    };

    /// <summary>One training step of a 16² classifier on the folder, validated at step 0 and followed by the evaluation table.</summary>
    public ClassifierTrainingJob ClassifierTraining(string logDir, Device device) => new(
        TrainingFixtures.ShortRun(DataDir, DataDir, logDir, iterations: 1) with { Validation = new() { ValDataDir = DataDir, EvalInterval = 1 } },
        ClassifierSampleFixture.TinyClassifier with { NumClasses = 2 }, new DiffusionConfig { DiffusionSteps = 50 }, new RunContext { Device = device });

    /// <summary>One image-train step of the tiny UNet (learned sigma: the VLB term runs too).</summary>
    public ImageTrainingJob ImageTraining(string logDir, Device device) => new(
        Training.TinyImageRun.Training(DataDir, logDir, iterations: 1), ClassifierSampleFixture.TinyUNet,
        new DiffusionConfig { DiffusionSteps = 50, LearnSigma = true }, new RunContext { Device = device });

    private static void WriteSidecar(string modelPath, CheckpointManifest manifest) =>
        File.WriteAllText(CheckpointManifest.PathFor(modelPath), JsonSerializer.Serialize(manifest, CheckpointManifest.JsonOptions));

    public void Dispose()
    {
        Directory.Delete(Folder, recursive: true);
        Directory.Delete(DataDir, recursive: true);
    }
}

/// <summary>
/// CI has no GPU, so these tests prove on the CPU that <c>--device</c> reaches every tensor, in two ways:
/// <list type="bullet">
/// <item><b>Default-device trap.</b> Torch's default device is made <c>meta</c> (no data, few kernels) and each job runs
/// to the end on the CPU. A tensor the code creates without naming its device lands on meta, and the first operation
/// mixing it with a CPU tensor (or reading it) fails. This catches every forgotten <c>device:</c>.</item>
/// <item><b>Meta dry run.</b> Each job runs with device <c>meta</c>. libtorch's meta backend has no kernel for
/// convolution (or index_select), so a run cannot finish; it must get into the model's forward pass with nothing left
/// on the CPU, where a CPU tensor meeting a meta one fails with "Expected all tensors to be on the same device" first.
/// This catches a host tensor (a batch, the CPU-drawn evaluation noise, a model) that is never moved.</item>
/// </list>
/// Neither runs a GPU kernel: numbers on a GPU and CUDA-only paths (fp16 speed, CUDA generators' streams, MPI on
/// device memory) are not tested here (README, GPU).
/// </summary>
public sealed class DevicePlacementTests : IClassFixture<DeviceJobsFixture>
{
    private static readonly Device Meta = device("meta");
    private readonly DeviceJobsFixture _fixture;

    public DevicePlacementTests(DeviceJobsFixture fixture) => _fixture = fixture;

    public static TheoryData<string> Jobs => new()
    {
        "classifier-train", "image-train", "classifier-sample", "classifier-eval", "classify", "sample-eval", "image-nll", "eps-eval",
    };

    /// <summary>Runs job <paramref name="name"/> on <paramref name="device"/> in a fresh folder; returns a line describing what it produced.</summary>
    private string Run(string name, Device device)
    {
        var outDir = TestImages.TempDir();
        var run = new RunContext { Device = device };
        switch (name)
        {
            case "classifier-train":
                return $"{_fixture.ClassifierTraining(outDir, device).Run().CompletedSteps} step";
            case "image-train":
                return $"{_fixture.ImageTraining(outDir, device).Run().CompletedSteps} step";
            case "classifier-sample":
                return string.Join(",", new GuidedSamplingJob(_fixture.Sampling(outDir), run).Run().Labels);
            case "classifier-eval":
                var evaluation = new NoiseLevelEvaluationJob(new NoiseLevelEvaluationOptions
                {
                    Classifier = _fixture.Classifier,
                    DataDir = _fixture.DataDir,
                    Evaluation = new EvaluationOptions { Timesteps = new[] { 0, 500 }, BatchSize = 4, NumWorkers = 1 },
                    LogDir = outDir,
                }, run).Run();
                return $"{evaluation.Report.Levels.Count} levels";
            case "classify":
                var classified = new ClassificationJob(new ClassificationOptions
                {
                    Classifier = _fixture.Classifier,
                    Timestep = 100,
                    NoiseSeed = 3,
                    Images = Directory.GetFiles(_fixture.DataDir).Order().Take(2).ToArray(),
                }, run).Run();
                return string.Join(",", classified.Select(c => c.Top[0].Class));
            case "sample-eval":
                var agreement = new SampleAgreementJob(new SampleAgreementOptions { Judge = _fixture.Classifier, Files = new[] { _fixture.SamplesPath } }, run).Run();
                return $"{agreement.Agreements[0].Agreement.Samples} samples";
            case "image-nll":
                var nll = new ImageNllJob(new ImageNllOptions
                {
                    Model = _fixture.DiffusionModel with { Diffusion = DeviceJobsFixture.Diffusion with { TimestepRespacing = "2" } },
                    DataDir = _fixture.DataDir,
                    LogDir = outDir,
                    NumSamples = 2,
                    BatchSize = 2,
                    NumWorkers = 1,
                }, run).Run();
                return $"{nll.Samples} samples";
            case "eps-eval":
                var eps = new EpsilonErrorJob(new EpsilonErrorOptions
                {
                    Model = _fixture.DiffusionModel,
                    DataDir = _fixture.DataDir,
                    LogDir = outDir,
                    Timesteps = [0, 999],
                    NumSamples = 2,
                    BatchSize = 2,
                    NumWorkers = 1,
                }, run).Run();
                return $"{eps.Samples} samples";
            default:
                throw new ArgumentOutOfRangeException(nameof(name), name, null);
        }
    }

    [Theory]
    [MemberData(nameof(Jobs))]
    public void Job_CreatesNoTensorOnTorchsDefaultDevice(string job)
    {
        using (new MetaDefaultDevice())
        {
            var produced = Run(job, CPU);
            Assert.False(string.IsNullOrEmpty(produced));
        }
    }

    [Theory]
    [MemberData(nameof(Jobs))]
    public void Job_OnMeta_ReachesTheModelWithEveryTensorOnMeta(string job)
    {
        var failure = Assert.ThrowsAny<Exception>(() => Run(job, Meta));
        // The first operation the meta backend cannot run is inside the model: a convolution, or the class embedding's
        // index_select (the library uses neither outside Models). Nothing on another device got there first. (The stack
        // trace cannot show it: once hot, the forward methods are inlined.)
        Assert.IsAssignableFrom<ExternalException>(failure);
        Assert.DoesNotContain("same device", failure.Message);
        Assert.Matches("convolution_overrideable|aten::index_select", failure.Message);
    }

    [Fact]
    public void ComputeDevice_ParsesCpu_AndExplainsAMissingCudaBackendInOneLine()
    {
        Assert.Equal(DeviceType.CPU, ComputeDevice.Parse("cpu").type);
        if (cuda.is_available()) return;
        var error = Assert.Throws<ConfigurationException>(() => ComputeDevice.Parse("cuda"));
        Assert.Equal("device", error.Setting);
        Assert.Contains("-p:TorchBackend=cuda", error.Message);
        Assert.DoesNotContain("\n", error.Message);
        Assert.Contains("cuda:1 is not available", Assert.Throws<ConfigurationException>(() => ComputeDevice.Parse("cuda:1")).Message);
        Assert.Contains("unknown device 'gpu'", Assert.Throws<ConfigurationException>(() => ComputeDevice.Parse("gpu")).Message);
    }

    [Fact]
    public void Trainer_RefusesAModelOnAnotherDevice()
    {
        using var model = new EncoderUNet(ClassifierSampleFixture.TinyClassifier);
        var error = Assert.Throws<ArgumentException>(() => new ClassifierTrainer(model, new DiffusionConfig().Build(), new TrainingConfig(), 5, device: Meta));
        Assert.Contains("not on the training device meta", error.Message);
    }

    /// <summary>Torch's default device is meta until disposed.</summary>
    private sealed class MetaDefaultDevice : IDisposable
    {
        public MetaDefaultDevice() => set_default_device(Meta);

        public void Dispose() => set_default_device(CPU);
    }
}
