using System.Text.Json;
using System.Text.Json.Serialization;
using GuidedDiffusion.Adversarial;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;

namespace GuidedDiffusion.Training;

/// <summary>
/// The sidecar's <c>training</c> section: the settings as one flat object in the order sidecars have always had
/// (the original's flag names), whatever the sections of <see cref="TrainingConfig"/>. Reading starts from
/// <c>new TrainingConfig()</c>, so a setting an older sidecar lacks keeps its default; unknown keys and the derived
/// <c>effective_microbatch</c> and <c>ema_rates</c> are ignored.
/// </summary>
internal sealed class TrainingSidecarJson : JsonConverter<TrainingConfig>
{
    private abstract record Field(string Name)
    {
        public abstract void Write(Utf8JsonWriter writer, TrainingConfig config, JsonSerializerOptions options);
        public abstract TrainingConfig Read(ref Utf8JsonReader reader, TrainingConfig config, JsonSerializerOptions options);
    }

    private sealed record Field<T>(string Name, Func<TrainingConfig, T> Get, Func<TrainingConfig, T, TrainingConfig>? Set) : Field(Name)
    {
        public override void Write(Utf8JsonWriter writer, TrainingConfig config, JsonSerializerOptions options)
        {
            var value = Get(config);
            if (value is null) return; // as JsonIgnoreCondition.WhenWritingNull: an unset iteration count or attack
            writer.WritePropertyName(Name);
            JsonSerializer.Serialize(writer, value, options);
        }

        public override TrainingConfig Read(ref Utf8JsonReader reader, TrainingConfig config, JsonSerializerOptions options)
        {
            if (Set is null) { reader.Skip(); return config; }
            return Set(config, JsonSerializer.Deserialize<T>(ref reader, options)!);
        }
    }

    private static Field<T> F<T>(string name, Func<TrainingConfig, T> get, Func<TrainingConfig, T, TrainingConfig>? set) => new(name, get, set);

    private static readonly Field[] Fields =
    [
        F("data_dir", c => c.Data.DataDir, (c, v) => c with { Data = c.Data with { DataDir = v } }),
        F("val_data_dir", c => c.Validation.ValDataDir, (c, v) => c with { Validation = c.Validation with { ValDataDir = v } }),
        F("noised", c => c.Objective.Noised, (c, v) => c with { Objective = c.Objective with { Noised = v } }),
        F("iterations", c => c.Length.Iterations, (c, v) => c with { Length = c.Length with { Iterations = v } }),
        F("lr", c => c.Optimizer.Lr, (c, v) => c with { Optimizer = c.Optimizer with { Lr = v } }),
        F("weight_decay", c => c.Optimizer.WeightDecay, (c, v) => c with { Optimizer = c.Optimizer with { WeightDecay = v } }),
        F("anneal_lr", c => c.Length.AnnealLr, (c, v) => c with { Length = c.Length with { AnnealLr = v } }),
        F("batch_size", c => c.Data.BatchSize, (c, v) => c with { Data = c.Data with { BatchSize = v } }),
        // −1 for an unset microbatch, as the original's flag (old sidecars hold −1, new ones too).
        F<int?>("microbatch", c => c.Optimizer.Microbatch ?? -1, (c, v) => c with { Optimizer = c.Optimizer with { Microbatch = v is null or -1 ? null : v } }),
        F("schedule_sampler", c => c.ScheduleSampler, (c, v) => c with { ScheduleSampler = v }),
        F("resume_checkpoint", c => c.Checkpoints.ResumeCheckpoint, (c, v) => c with { Checkpoints = c.Checkpoints with { ResumeCheckpoint = v } }),
        F("log_interval", c => c.Checkpoints.LogInterval, (c, v) => c with { Checkpoints = c.Checkpoints with { LogInterval = v } }),
        F("eval_interval", c => c.Validation.EvalInterval, (c, v) => c with { Validation = c.Validation with { EvalInterval = v } }),
        F("save_interval", c => c.Checkpoints.SaveInterval, (c, v) => c with { Checkpoints = c.Checkpoints with { SaveInterval = v } }),
        F("log_dir", c => c.Checkpoints.LogDir, (c, v) => c with { Checkpoints = c.Checkpoints with { LogDir = v } }),
        F("seed", c => c.Seed, (c, v) => c with { Seed = v }),
        F("precision", c => c.Precision.Mode, (c, v) => c with { Precision = c.Precision with { Mode = v } }),
        F("allow_slow_bf16", c => c.Precision.AllowSlowBf16, (c, v) => c with { Precision = c.Precision with { AllowSlowBf16 = v } }),
        F("ema_rate", c => c.Optimizer.EmaRate, (c, v) => c with { Optimizer = c.Optimizer with { EmaRate = v } }),
        F("grad_clip", c => c.Optimizer.GradClip, (c, v) => c with { Optimizer = c.Optimizer with { GradClip = v } }),
        F("fp16_scale_growth", c => c.Precision.Fp16ScaleGrowth, (c, v) => c with { Precision = c.Precision with { Fp16ScaleGrowth = v } }),
        F("initial_lg_loss_scale", c => c.Precision.InitialLgLossScale, (c, v) => c with { Precision = c.Precision with { InitialLgLossScale = v } }),
        F("allow_config_mismatch", c => c.Checkpoints.AllowConfigMismatch, (c, v) => c with { Checkpoints = c.Checkpoints with { AllowConfigMismatch = v } }),
        F("eval_table", c => c.Validation.EvalTable, (c, v) => c with { Validation = c.Validation with { EvalTable = v } }),
        F("label_from", c => c.Data.LabelFrom, (c, v) => c with { Data = c.Data with { LabelFrom = v } }),
        F("num_workers", c => c.Data.NumWorkers, (c, v) => c with { Data = c.Data with { NumWorkers = v } }),
        F("skip_bad_images", c => c.Data.SkipBadImages, (c, v) => c with { Data = c.Data with { SkipBadImages = v } }),
        F("overwrite", c => c.Checkpoints.Overwrite, (c, v) => c with { Checkpoints = c.Checkpoints with { Overwrite = v } }),
        F("flip_validation", c => c.Validation.FlipValidation, (c, v) => c with { Validation = c.Validation with { FlipValidation = v } }),
        F("random_crop", c => c.Data.RandomCrop, (c, v) => c with { Data = c.Data with { RandomCrop = v } }),
        F("random_flip", c => c.Data.RandomFlip, (c, v) => c with { Data = c.Data with { RandomFlip = v } }),
        F("shuffle", c => c.Data.Shuffle, (c, v) => c with { Data = c.Data with { Shuffle = v } }),
        F("check_rank_sync", c => c.CheckRankSync, (c, v) => c with { CheckRankSync = v }),
        F<L2PgdOptions?>("adversarial", c => c.Objective.Adversarial, (c, v) => c with { Objective = c.Objective with { Adversarial = v } }),
        // Derived values, written for readers of the file and ignored on reading.
        F("effective_microbatch", c => c.EffectiveMicrobatch, null),
        F("ema_rates", c => c.Optimizer.EmaRates, null),
    ];

    private static readonly Dictionary<string, Field> ByName = Fields.ToDictionary(f => f.Name, StringComparer.Ordinal);

    public override TrainingConfig Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("the training section is not an object.");
        var config = new TrainingConfig();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var name = reader.GetString()!;
            reader.Read();
            if (ByName.TryGetValue(name, out var field)) config = field.Read(ref reader, config, options);
            else reader.Skip();
        }
        return config;
    }

    public override void Write(Utf8JsonWriter writer, TrainingConfig value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        foreach (var field in Fields) field.Write(writer, value, options);
        writer.WriteEndObject();
    }
}
