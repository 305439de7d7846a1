using GuidedDiffusion.Models;

namespace GuidedDiffusion.Training;

/// <summary>
/// The small configuration the demo (no --data_dir) trains on the bundled Fashion-MNIST split at 32×32:
/// sized to finish in a few minutes on 2 CPU cores. Flags the user typed keep their values.
/// </summary>
public static class DemoPreset
{
    /// <summary>One-line summary of the classifier demo as configured (demo values and the flags the user gave).</summary>
    public static string Describe(TrainingConfig training, ClassifierConfig classifier) =>
        $"9,000 train / 1,000 validation images at {classifier.ImageSize}x{classifier.ImageSize}, width {classifier.Width}, depth {classifier.Depth}, "
        + $"{training.Iterations} steps of batch {training.BatchSize}";

    /// <summary>Demo values for every loop and architecture flag the user did not give.</summary>
    public static (TrainingConfig Training, ClassifierConfig Classifier) Apply(TrainingConfig training, ClassifierConfig classifier, Func<string, bool> given)
    {
        T Pick<T>(string flag, T demo, T current) => given(flag) ? current : demo;
        var t = training with
        {
            Iterations = Pick("iterations", 400, training.Iterations),
            BatchSize = Pick("batch_size", 32, training.BatchSize),
            Lr = Pick("lr", 3e-4, training.Lr),
            AnnealLr = Pick("anneal_lr", true, training.AnnealLr),
            LogInterval = Pick("log_interval", 50, training.LogInterval),
            EvalInterval = Pick("eval_interval", 10, training.EvalInterval),
            SaveInterval = Pick("save_interval", 200, training.SaveInterval),
            Precision = Pick("precision", "fp32", training.Precision),
            LogDir = Pick("log_dir", Path.Combine("runs", "demo"), training.LogDir),
            Overwrite = DemoOverwrites(training, given),
        };
        var c = classifier with
        {
            ImageSize = Pick("image_size", 32, classifier.ImageSize),
            Width = Pick("classifier_width", 64, classifier.Width),
            Depth = Pick("classifier_depth", 1, classifier.Depth),
            ChannelMult = Pick("channel_mult", "1,2,2", classifier.ChannelMult),
            AttentionResolutions = Pick("classifier_attention_resolutions", "16,8", classifier.AttentionResolutions),
            NumHeadChannels = Pick("num_head_channels", 64, classifier.NumHeadChannels),
        };
        return (t, c);
    }

    /// <summary>One-line summary of the image-train demo as configured (demo values and the flags the user gave).</summary>
    public static string DescribeDiffusion(TrainingConfig training, DiffusionModelConfig model, Diffusion.DiffusionConfig diffusion) =>
        $"9,000 images at {model.ImageSize}x{model.ImageSize}, a UNet with num_channels {model.NumChannels}, channel_mult {model.ChannelMult}, "
        + $"{model.NumResBlocks} res block(s), batch {training.BatchSize}"
        + (training.Iterations < int.MaxValue ? $", {training.Iterations} steps" : "")
        + $", the {diffusion.DiffusionSteps}-step {diffusion.NoiseSchedule} process";

    /// <summary>Demo values for the image-train flags the user did not give (a tiny UNet that trains on 2 CPU cores).</summary>
    public static (TrainingConfig Training, DiffusionModelConfig Model, Diffusion.DiffusionConfig Diffusion) ApplyDiffusion(
        TrainingConfig training, DiffusionModelConfig model, Diffusion.DiffusionConfig diffusion, Func<string, bool> given)
    {
        T Pick<T>(string flag, T demo, T current) => given(flag) ? current : demo;
        var t = training with
        {
            Iterations = given("lr_anneal_steps") ? training.Iterations : Pick("iterations", 200, training.Iterations),
            BatchSize = Pick("batch_size", 16, training.BatchSize),
            Lr = Pick("lr", 3e-4, training.Lr),
            LogInterval = Pick("log_interval", 20, training.LogInterval),
            SaveInterval = Pick("save_interval", 100, training.SaveInterval),
            EmaRate = Pick("ema_rate", "0.999", training.EmaRate),
            LogDir = Pick("log_dir", Path.Combine("runs", "image-demo"), training.LogDir),
            Overwrite = DemoOverwrites(training, given),
        };
        var m = model with
        {
            ImageSize = Pick("image_size", 32, model.ImageSize),
            NumChannels = Pick("num_channels", 32, model.NumChannels),
            NumResBlocks = Pick("num_res_blocks", 1, model.NumResBlocks),
            ChannelMult = Pick("channel_mult", "1,2", model.ChannelMult),
            AttentionResolutions = Pick("attention_resolutions", "16", model.AttentionResolutions),
            NumHeadChannels = Pick("num_head_channels", 32, model.NumHeadChannels),
            NumClasses = Pick("num_classes", 10, model.NumClasses),
        };
        // The process is left at the defaults (1000 linear steps), the one classifier-train's demo trains on: a
        // guiding classifier must share the diffusion model's process. Sampling can still respace it.
        return (t, m, diffusion);
    }

    /// <summary>
    /// The demo's own folder (no --log_dir) is replaced on a re-run, its files moved into replaced-&lt;time&gt;/,
    /// so the main job can be run twice; a folder the user named, or a resume, keeps the strict rule.
    /// </summary>
    private static bool DemoOverwrites(TrainingConfig training, Func<string, bool> given) =>
        given("overwrite") ? training.Overwrite : !given("log_dir") && !given("resume_checkpoint");
}
