using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Support;
using GuidedDiffusion.Training;

namespace GuidedDiffusion.Tests.Checkpoints;

/// <summary>
/// A sidecar written before the settings were typed (string precision, pool, schedules and label rule, microbatch
/// −1; Reference/checkpoints/classifier-sidecar-v1.json, its sampler history cut to two rows) still loads into the
/// typed records, and writing them back gives the same bytes: the format did not change.
/// </summary>
public class RecordedSidecarTests
{
    private const string Recorded = "checkpoints/classifier-sidecar-v1.json";

    [Fact]
    public void OldSidecar_LoadsIntoTheTypedSettings()
    {
        var manifest = CheckpointManifest.Read(Reference.PathOf(Recorded));
        Assert.Equal(ClassifierPool.SpatialV2, manifest.Classifier!.Pool);
        Assert.Equal(NoiseSchedule.Cosine, manifest.Diffusion.NoiseSchedule);
        var training = TrainingConfig.RecordedIn(manifest)!;
        Assert.Equal((TrainingPrecision.Fp32, TimestepSamplerKind.LossSecondMoment, LabelRule.Prefix, (int?)null, 4),
            (training.Precision.Mode, training.ScheduleSampler, training.Data.LabelFrom, training.Optimizer.Microbatch, training.EffectiveMicrobatch));
    }

    [Fact]
    public void OldSidecar_WrittenBack_IsByteForByteTheSame()
    {
        var text = File.ReadAllText(Reference.PathOf(Recorded));
        var manifest = CheckpointManifest.Read(Reference.PathOf(Recorded));
        // The training section goes through the typed record, as a new run's sidecar does.
        var training = JsonSerializer.SerializeToElement(TrainingConfig.RecordedIn(manifest), CheckpointManifest.JsonOptions);
        Assert.Equal(text, JsonSerializer.Serialize(manifest with { Training = training }, CheckpointManifest.JsonOptions));
    }
}
