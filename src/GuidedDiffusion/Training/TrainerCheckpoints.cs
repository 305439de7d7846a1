using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;

namespace GuidedDiffusion.Training;

/// <summary>
/// A trainer's state to and from the files of <see cref="CheckpointStore"/>: the Checkpoints layer knows the
/// files, this class knows which parts of a <see cref="TrainerBase"/> go into them.
/// </summary>
public static class TrainerCheckpoints
{
    /// <summary>Writes the master weights, optimizer, EMAs and <paramref name="manifest"/> for update index <paramref name="index"/>.</summary>
    /// <returns>The path of <c>modelNNNNNN.pt</c>.</returns>
    public static string Save(TrainerBase trainer, string directory, long index, CheckpointManifest manifest) =>
        CheckpointStore.Save(directory, index, trainer.MasterStateDict(), trainer.Optimizer,
            trainer.Emas.Select(ema => (ema.Rate, trainer.StateDictWith(ema.Values).AsEnumerable())),
            manifest);

    /// <summary>Loads weights, optimizer, EMA, loss scale and sampler state of <paramref name="resume"/> into <paramref name="trainer"/>.</summary>
    public static void Restore(TrainerBase trainer, ResumePoint resume, Action<string> log)
    {
        log($"loading model from checkpoint: {resume.ModelPath}... at {resume.CompletedSteps} completed steps");
        var weights = StateDictIO.Read(resume.ModelPath);
        try
        {
            trainer.LoadParameters(weights, resume.ModelPath);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
        var optPath = resume.OptimizerPath;
        log($"loading optimizer state from checkpoint: {optPath}");
        CheckpointStore.LoadOptimizer(trainer.Optimizer, trainer.NamedParameters.Select(p => p.name).ToArray(), optPath);
        foreach (var ema in trainer.Emas)
        {
            var emaPath = resume.EmaPath(ema.Rate);
            if (!File.Exists(emaPath))
            {
                log($"warning: no EMA file '{emaPath}'; the EMA at rate {ema.Rate} restarts from the model weights.");
                continue;
            }
            var values = StateDictIO.Read(emaPath);
            try { ema.Load(trainer.NamedParameters.Select(p => values[p.name]).ToArray()); }
            finally { foreach (var t in values.Values) t.Dispose(); }
        }
        var manifest = resume.Manifest;
        if (manifest?.LgLossScale is { } lg) trainer.Precision.RestoreLgLossScale(lg);
        if (manifest?.SamplerHistory is { } history && manifest.SamplerCounts is { } counts && trainer.Sampler is LossSecondMomentResampler lsm)
        {
            var h = new double[history.Length, history[0].Length];
            for (int t = 0; t < history.Length; t++) for (int k = 0; k < history[t].Length; k++) h[t, k] = history[t][k];
            lsm.Restore(h, counts);
        }
        trainer.CompletedSteps = resume.CompletedSteps;
    }
}
