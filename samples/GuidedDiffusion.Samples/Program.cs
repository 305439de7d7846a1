// Classifier guidance from C#, through the library API alone: train a small noisy classifier and a tiny
// diffusion model for a few steps on the bundled Fashion-MNIST sample, evaluate the classifier at each noise
// level, and sample with classifier guidance. The same calls are shown in the README's "From C#" section.
// Run: dotnet run -c Release --project samples/GuidedDiffusion.Samples [-- output-folder]
using GuidedDiffusion;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Models;
using GuidedDiffusion.Training;

var root = args.Length > 0 ? args[0] : Path.Combine(Path.GetTempPath(), $"guided-diffusion-sample-{Environment.ProcessId}");
var diffusion = new DiffusionConfig { DiffusionSteps = 100 };
// How every job runs: its lines to the console (the device, spelling and pixel limit keep their defaults).
var console = new RunContext { Output = Console.Out, Warnings = Console.Error };

// 1. A noise-aware classifier p(y | x_t, t): DataDir "" means the bundled 32×32 Fashion-MNIST sample.
var classifierRun = new ClassifierTrainingJob(
    new TrainingConfig
    {
        Data = new() { BatchSize = 8 },
        Length = new() { Iterations = 4 },
        Checkpoints = new() { LogDir = Path.Combine(root, "classifier"), SaveInterval = 1000 },
        Validation = new() { EvalTable = false },
    },
    new ClassifierConfig { ImageSize = 32, ChannelMult = [1, 2, 2], Width = 32, Depth = 1, AttentionResolutions = [8], NumHeadChannels = 32, NumClasses = 10 },
    diffusion, console).Run();

// 2. Its loss, accuracy and calibration per noise level on the demo's validation split (eval.csv / .json / .png).
var evaluation = new NoiseLevelEvaluationJob(new NoiseLevelEvaluationOptions
{
    Classifier = new ClassifierSource { Path = classifierRun.LastCheckpoint },
    Evaluation = new EvaluationOptions { Timesteps = [0, 50, 99], NoiseRepeats = 1, ComputeGradNorm = false },
}).Run();
Console.Write(evaluation.Report.FormatTable());

// 3. A tiny class-conditional diffusion model to guide (a real one trains for hours; this shows the calls).
var modelRun = new ImageTrainingJob(
    TrainingConfig.ImageTrainDefaults with
    {
        Data = DataOptions.ImageTrainDefaults with { BatchSize = 4 },
        Length = new() { Iterations = 2 },
        Checkpoints = new() { LogDir = Path.Combine(root, "model"), SaveInterval = 1000 },
    },
    new DiffusionModelConfig { ImageSize = 32, NumChannels = 32, NumResBlocks = 1, ChannelMult = [1, 2], AttentionResolutions = [16], NumHeadChannels = 32, ClassCond = true, NumClasses = 10 },
    diffusion, console).Run();

// 4. Guided sampling: both checkpoints' sidecars supply their architectures and noise process.
var samples = new GuidedSamplingJob(new GuidedSamplingOptions
{
    Model = new DiffusionModelSource { Path = modelRun.LastCheckpoint, Diffusion = new DiffusionConfig { TimestepRespacing = "ddim5" } },
    ClassifierPath = classifierRun.LastCheckpoint,
    UseDdim = true,
    ClassifierScale = 3,
    NumSamples = 4,
    BatchSize = 4,
    OutDir = Path.Combine(root, "samples"),
}, console).Run();
Console.WriteLine($"classes requested: {string.Join(", ", samples.Labels)}; images in {samples.NpzPath}");
