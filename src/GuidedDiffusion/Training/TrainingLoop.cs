using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Distributed;
using static TorchSharp.torch;

namespace GuidedDiffusion.Training;

/// <summary>
/// The loop both training jobs run around a <see cref="TrainerBase"/>: step, optional rank-sync check and
/// extra per-step work (validation), progress callback, metric dumps averaged across ranks, checkpoints by the
/// original's rule, and a clean stop on request. Set-up (model, data, resume) is <see cref="TrainingSession"/>'s and the jobs'.
/// </summary>
internal sealed class TrainingLoop
{
    private readonly TrainerBase _trainer;
    private readonly TrainingConfig _training;
    private readonly ICommunicator _comm;
    private readonly RunLogger? _logger;
    private readonly IReadOnlyList<string> _columns;
    private readonly string _logDir;

    public TrainingLoop(TrainerBase trainer, TrainingConfig training, ICommunicator comm, RunLogger? logger, IReadOnlyList<string> columns, string logDir)
    {
        _trainer = trainer;
        _training = training;
        _comm = comm;
        _logger = logger;
        _columns = columns;
        _logDir = logDir;
    }

    /// <summary>Called after every step with (completed steps, total, latest progress metric or NaN).</summary>
    public Action<long, long, double>? OnStep { get; init; }

    /// <summary>Extra work after each step's update, given the step index (the classifier's validation batch).</summary>
    public Action<long>? AfterStep { get; init; }

    /// <summary>The sidecar for the checkpoint about to be written.</summary>
    public required Func<CheckpointManifest> Manifest { get; init; }

    public TrainingResult Run(DataLoader trainData, ResumePoint? resume, CancellationToken stop)
    {
        void Log(string line) => _logger?.Log(line);
        long firstStep = _trainer.CompletedSteps, lastSaved = -1;
        string lastCheckpoint = resume?.ModelPath ?? "";
        bool interrupted = false;
        long end = _training.Length.Iterations ?? long.MaxValue;  // null: until stopped
        for (long step = firstStep; step < end; step++)
        {
            using (var batch = trainData.Next()) _trainer.Step(batch.Images, batch.Labels);
            _logger?.ReportSkipped(trainData.TakeNewBadImages());
            if (_training.CheckRankSync) CheckRankSync(step);
            AfterStep?.Invoke(step);
            OnStep?.Invoke(_trainer.CompletedSteps, end, _trainer.Metrics.Snapshot().GetValueOrDefault(_trainer.ProgressMetric, double.NaN));
            if (step % _training.Checkpoints.LogInterval == 0)
            {
                var values = AverageAcrossRanks(_trainer.Metrics, _columns);
                if (trainData.BadImageCount > 0) Log($"skipped {trainData.BadImageCount} unreadable images so far");
                _logger?.Dump(values, step);
                _trainer.Metrics.Clear();
            }
            interrupted = StopRequested(stop) && step + 1 < end;
            // The original saves when the loop's local index is non-zero and the global index is a multiple.
            bool due = step != firstStep && step % _training.Checkpoints.SaveInterval == 0;
            if (due || interrupted || step + 1 == end)
            {
                Log(interrupted ? "stop requested: saving model..." : "saving model...");
                if (_comm.IsMain)
                    lastCheckpoint = TrainerCheckpoints.Save(_trainer, _logDir, step, Manifest());
                lastSaved = step;
            }
            if (interrupted) break;
        }
        if (lastSaved < 0 && resume is not null)
            Log($"nothing to do: the checkpoint already holds {_trainer.CompletedSteps} of {_training.Length.Iterations} updates.");
        _comm.Barrier();
        return new TrainingResult(_logDir, lastCheckpoint, _trainer.CompletedSteps, interrupted);
    }

    /// <summary>The sidecar fields every trainer fills: steps, diffusion and loop flags, classes, loss scale, sampler state.</summary>
    public static CheckpointManifest BaseManifest(TrainerBase trainer, DiffusionConfig diffusion, TrainingConfig training, ClassMap classes)
    {
        double[][]? history = null;
        int[]? counts = null;
        if (trainer.Sampler is LossSecondMomentResampler lsm)
        {
            var h = lsm.LossHistory;
            history = Enumerable.Range(0, h.GetLength(0)).Select(t => Enumerable.Range(0, h.GetLength(1)).Select(k => h[t, k]).ToArray()).ToArray();
            counts = lsm.LossCounts.ToArray();
        }
        return new CheckpointManifest
        {
            CompletedSteps = trainer.CompletedSteps,
            Diffusion = diffusion,
            Training = JsonSerializer.SerializeToElement(training, CheckpointManifest.JsonOptions),
            Classes = classes.Names,
            WorldSize = trainer.WorldSize,
            LgLossScale = trainer.Precision.LgLossScale,
            SamplerHistory = history,
            SamplerCounts = counts,
            Versions = CheckpointManifest.CurrentVersions(),
            CreatedUtc = DateTime.UtcNow,
        };
    }

    private void CheckRankSync(long step)
    {
        if (_comm.WorldSize == 1) return;
        double checksum;
        using (var scope = NewDisposeScope())
            checksum = _trainer.Precision.MasterParameters.Sum(p => p.detach().to_type(ScalarType.Float64).sum().item<double>());
        var all = _comm.AllGather(checksum);
        if (all.Any(c => c != all[0]))
            throw new InvalidOperationException($"ranks diverged after step {step}: parameter checksums {string.Join(", ", all)}.");
    }

    /// <summary>Every rank must agree to stop, or the others would wait in the next collective.</summary>
    private bool StopRequested(CancellationToken stop)
    {
        if (_comm.WorldSize == 1) return stop.IsCancellationRequested;
        var flag = new[] { stop.IsCancellationRequested ? 1.0 : 0.0 };
        _comm.AllReduceSum(flag);
        return flag[0] > 0;
    }

    /// <summary>The original's mpi_weighted_mean: each key's mean over all values logged on all ranks.</summary>
    private Dictionary<string, double> AverageAcrossRanks(MetricAccumulator metrics, IReadOnlyList<string> keys)
    {
        if (_comm.WorldSize == 1) return metrics.Snapshot();
        var (sums, counts) = metrics.SumsAndCounts(keys);
        _comm.AllReduceSum(sums);
        _comm.AllReduceSum(counts);
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        for (int i = 0; i < keys.Count; i++)
            if (counts[i] > 0) result[keys[i]] = sums[i] / counts[i];
        return result;
    }
}
