using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Evaluation;

/// <summary>Options of <see cref="EpsilonErrorJob"/> (<c>eps-eval</c>), with their defaults.</summary>
public sealed record EpsilonErrorOptions
{
    /// <summary>The diffusion model and the settings for a checkpoint without a sidecar. The path is required; a
    /// respacing is refused (the model is measured at the timesteps of the process it was trained on).</summary>
    public DiffusionModelSource Model { get; init; } = new();

    /// <summary>The image folder (labels from the file-name prefix); empty: the Fashion-MNIST demo's validation split (grey images).</summary>
    public string DataDir { get; init; } = "";

    /// <summary>Where <c>eps_eval.json</c> and <c>eps_eval.csv</c> go; empty: the checkpoint's folder.</summary>
    public string LogDir { get; init; } = "";

    /// <summary>Timesteps of the process to measure at; empty: <see cref="DefaultTimesteps"/>.</summary>
    public IReadOnlyList<int> Timesteps { get; init; } = [];

    /// <summary>Images measured (the first ones of the data). Default 200.</summary>
    public int NumSamples { get; init; } = 200;

    /// <summary>Images per forward pass. Default 50.</summary>
    public int BatchSize { get; init; } = 50;

    /// <summary>Seed of the noise ε; each image gets one draw, used at every timestep (so the rows differ by t
    /// alone). Default 0.</summary>
    public int Seed { get; init; }

    /// <summary>Clip the x₀ estimate to [−1, 1] before its channel spread is taken, as sampling does. Default true.</summary>
    public bool ClipDenoised { get; init; } = true;

    /// <summary>Image-decoding threads (0: on the caller's thread). Default: one per processor.</summary>
    public int NumWorkers { get; init; } = Environment.ProcessorCount;

    /// <summary>
    /// The default grid for a T-step process: 0, T/20, T/10, 2T/10, …, 9T/10 and T − 1 (for T = 1000: 0, 50, 100,
    /// 200, …, 900, 999): dense at low noise, where the sampler's last steps decide the details.
    /// </summary>
    /// <param name="steps">T.</param>
    public static IReadOnlyList<int> DefaultTimesteps(int steps) =>
        new[] { 0, steps / 20 }.Concat(Enumerable.Range(1, 9).Select(i => i * steps / 10)).Append(steps - 1)
            .Where(t => t >= 0 && t < steps).Distinct().Order().ToArray();

    /// <summary>Throws <see cref="ConfigurationException"/> naming the setting when an option is out of range.</summary>
    /// <param name="steps">T of the process measured.</param>
    public void Validate(int steps)
    {
        if (NumSamples < 1) throw new ConfigurationException("num_samples", $"must be at least 1, got {NumSamples}.");
        if (BatchSize < 1) throw new ConfigurationException("batch_size", $"must be at least 1, got {BatchSize}.");
        if (NumWorkers < 0) throw new ConfigurationException("num_workers", $"must be 0 or more, got {NumWorkers}.");
        foreach (var t in Timesteps)
            if (t < 0 || t >= steps)
                throw new ConfigurationException("timesteps", $"must lie in [0, {steps}) for the model's {steps}-step process, got {t}.");
    }
}

/// <summary>
/// What the model's noise prediction gets wrong at one timestep, per channel c (averages over images and pixels).
/// </summary>
/// <param name="Timestep">t.</param>
/// <param name="MeanError">Mean of ε̂ − ε: a non-zero value is a colour bias in ε̂, which x̂₀ = (x_t − sqrt(1 − ᾱ_t)·ε̂)/sqrt(ᾱ_t) turns into a colour cast.</param>
/// <param name="MeanEps">Mean of ε itself (≈ 0; the scale a mean error is read against).</param>
/// <param name="Mse">Mean of (ε̂ − ε)²: the training loss, per channel.</param>
/// <param name="ImageMeanErrorRms">Root mean square over images of each image's mean of ε̂ − ε over its pixels:
/// how far off ε̂'s per-image, per-channel mean is (errors of opposite sign in different images do not cancel).</param>
/// <param name="ImageMeanEpsRms">The same of ε (≈ 1/sqrt(H·W)): the per-image mean noise the model must infer.</param>
/// <param name="XstartChannelSpread">Mean over images and pixels of the standard deviation across channels of x̂₀
/// (population, clipped when asked): 0 for a grey estimate.</param>
/// <param name="OffsetGain">How ε̂'s per-image mean of each channel moves when x_t is shifted by a constant
/// <see cref="EpsilonErrorJob.OffsetProbe"/> in every pixel, divided by the shift (mean over images). A model that reads the
/// shift as noise answers 1/sqrt(1 − ᾱ_t) (≈ 1 near t = T, where x_t is almost all noise, so the per-image mean
/// of ε is in plain view); 0 means ε̂ is blind to the per-channel mean of its input, so the mean noise of each
/// channel is never removed and stays in the samples as a colour cast.</param>
public sealed record EpsilonErrorRow(
    [property: JsonPropertyName("t")] int Timestep,
    [property: JsonPropertyName("mean_error")] IReadOnlyList<double> MeanError,
    [property: JsonPropertyName("mean_eps")] IReadOnlyList<double> MeanEps,
    [property: JsonPropertyName("mse")] IReadOnlyList<double> Mse,
    [property: JsonPropertyName("image_mean_error_rms")] IReadOnlyList<double> ImageMeanErrorRms,
    [property: JsonPropertyName("image_mean_eps_rms")] IReadOnlyList<double> ImageMeanEpsRms,
    [property: JsonPropertyName("xstart_channel_spread")] double XstartChannelSpread,
    [property: JsonPropertyName("offset_gain")] IReadOnlyList<double> OffsetGain);

/// <summary>What <see cref="EpsilonErrorJob"/> measured (the schema of <c>eps_eval.json</c>).</summary>
/// <param name="Samples">Images measured.</param>
/// <param name="NumTimesteps">T of the process.</param>
/// <param name="Seed">The noise seed.</param>
/// <param name="InputChannelSpread">The channel spread of the clean images themselves (0 for grey images): what a
/// perfect model's x̂₀ spread is.</param>
/// <param name="Rows">One row per timestep, in the order asked.</param>
public sealed record EpsilonErrorResult(
    [property: JsonPropertyName("samples")] int Samples,
    [property: JsonPropertyName("num_timesteps")] int NumTimesteps,
    [property: JsonPropertyName("seed")] long Seed,
    [property: JsonPropertyName("input_channel_spread")] double InputChannelSpread,
    [property: JsonPropertyName("rows")] IReadOnlyList<EpsilonErrorRow> Rows)
{
    /// <summary>The files <see cref="EpsilonErrorJob.Run"/> wrote (<see cref="EpsilonErrorJob.WriteFiles"/>); empty from <see cref="EpsilonErrorJob.Measure"/>.</summary>
    [JsonIgnore]
    public IReadOnlyList<string> Files { get; init; } = [];

    /// <summary>The CSV header: t, then per quantity one column per channel (suffix r, g, b for 3 channels), then the spread.</summary>
    public string CsvHeader()
    {
        var suffixes = ChannelNames();
        var columns = new List<string> { "t" };
        foreach (var quantity in new[] { "mean_error", "mean_eps", "mse", "image_mean_error_rms", "image_mean_eps_rms" })
            columns.AddRange(suffixes.Select(c => $"{quantity}_{c.ToLowerInvariant()}"));
        columns.Add("xstart_channel_spread");
        columns.AddRange(suffixes.Select(c => $"offset_gain_{c.ToLowerInvariant()}"));
        return string.Join(',', columns);
    }

    /// <summary>The rows as CSV (<see cref="CsvHeader"/> first), invariant culture, round-trip precision.</summary>
    public string ToCsv()
    {
        var sb = new StringBuilder(CsvHeader()).Append('\n');
        foreach (var row in Rows)
        {
            var values = new[] { row.MeanError, row.MeanEps, row.Mse, row.ImageMeanErrorRms, row.ImageMeanEpsRms }
                .SelectMany(v => v).Append(row.XstartChannelSpread).Concat(row.OffsetGain).Select(v => v.ToString("R", CultureInfo.InvariantCulture));
            sb.Append(row.Timestep.ToString(CultureInfo.InvariantCulture)).Append(',').AppendJoin(',', values).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>A fixed-width table: per t the mean error, the per-image mean error (RMS), the MSE per channel, the x̂₀ spread, the offset gain.</summary>
    public string FormatTable()
    {
        var names = ChannelNames();
        string Group(string title) => title.PadRight(names.Length * 8 - 1);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture,
            $"{"",5}  {Group("mean(eps_hat - eps)")}  {Group("rms of image mean err")}  {Group("rms of image mean eps")}  {Group("MSE")}  {"x0_hat",8}  {Group("offset gain")}\n");
        string Channels() => string.Join(' ', names.Select(n => n.PadLeft(7)));
        sb.Append(CultureInfo.InvariantCulture, $"{"t",5}  {Channels()}  {Channels()}  {Channels()}  {Channels()}  {"spread",8}  {Channels()}\n");
        static string V(IEnumerable<double> values) => string.Join(' ', values.Select(v => v.ToString("0.0000", CultureInfo.InvariantCulture).PadLeft(7)));
        foreach (var r in Rows)
            sb.Append(CultureInfo.InvariantCulture,
                $"{r.Timestep,5}  {V(r.MeanError)}  {V(r.ImageMeanErrorRms)}  {V(r.ImageMeanEpsRms)}  {V(r.Mse)}  {r.XstartChannelSpread.ToString("0.0000", CultureInfo.InvariantCulture),8}  {V(r.OffsetGain)}\n");
        sb.Append(CultureInfo.InvariantCulture,
            $"({Samples} images, noise seed {Seed}; channel spread of the clean images {InputChannelSpread.ToString("0.0000", CultureInfo.InvariantCulture)})\n");
        return sb.ToString();
    }

    private string[] ChannelNames()
    {
        int channels = Rows.Count == 0 ? 3 : Rows[0].MeanError.Count;
        return channels == 3 ? ["R", "G", "B"] : Enumerable.Range(0, channels).Select(c => $"c{c}").ToArray();
    }
}

/// <summary>
/// <c>eps-eval</c>: a colour-cast diagnostic of a diffusion model. Real images x₀ are noised to x_t = q_sample(x₀,
/// t, ε) with seeded ε, and the model's ε̂ (its first C output channels, or ε derived from its x₀ prediction) is
/// compared with ε per channel: a per-channel bias of ε̂ on grey images is what colours their x̂₀ estimates, and
/// the channel spread of x̂₀ shows it directly (0 for a grey-preserving model on grey images).
/// </summary>
public sealed class EpsilonErrorJob
{
    /// <summary>The constant added to every pixel and channel of x_t to measure <see cref="EpsilonErrorRow.OffsetGain"/>:
    /// small against x_t's unit scale, large against float32 rounding.</summary>
    public const double OffsetProbe = 0.1;

    private readonly EpsilonErrorOptions _options;
    private readonly RunContext _run;

    /// <summary>Prepares a job; <see cref="Run"/> does the work.</summary>
    /// <param name="options">The settings.</param>
    /// <param name="run">Device, the progress lines, the decoder's limit (null: <see cref="RunContext"/>'s defaults).</param>
    public EpsilonErrorJob(EpsilonErrorOptions options, RunContext? run = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _run = run ?? new RunContext();
    }

    /// <summary>Loads the model and the data, measures, and writes the files into the log folder (default: the checkpoint's).</summary>
    /// <exception cref="ConfigurationException">A setting is invalid.</exception>
    /// <exception cref="CheckpointException">The checkpoint is missing or unreadable.</exception>
    public EpsilonErrorResult Run()
    {
        var o = _options;
        if (o.Model.Path.Length == 0) throw new ConfigurationException("model_path", "is required: the diffusion model checkpoint.");
        if (o.Model.Diffusion.TimestepRespacing.Length > 0)
            throw new ConfigurationException("timestep_respacing", "does not apply: eps-eval measures the model at the timesteps of the process it was trained on.");
        _run.Validate();
        using var trained = o.Model.Load(_run.Device);
        if (trained.Sidecar is not null) _run.Log($"architecture and noise process from {trained.Sidecar}");
        var source = JobInputs.ImagesOrDemo(o.DataDir, _run, "grey images");
        var m = trained.Model;
        var result = Measure((x, t, y) => m.forward(x, t, y), m.IsClassConditional, ReverseProcess.For(trained.Diffusion),
            trained.Config.ImageSize, source, o, _run.Log, _run.Device);
        return result with { Files = WriteFiles(result, JobInputs.OutputFolder(o.LogDir, o.Model.Path)) };
    }

    /// <summary>Measures <paramref name="model"/> on the first <see cref="EpsilonErrorOptions.NumSamples"/> images of <paramref name="source"/>.</summary>
    /// <param name="model">The denoiser, called with x_t, the model's timesteps and the labels (null when <paramref name="classConditional"/> is false), without gradients.</param>
    /// <param name="classConditional">Pass the images' labels to the model.</param>
    /// <param name="process">The process and parameterisation the model was trained with (its t are the rows' t).</param>
    /// <param name="imageSize">The model's image side; images are centre-cropped to it like validation data.</param>
    /// <param name="device">Where the model runs: batches, t and the noise are made there (null: the CPU).</param>
    /// <param name="source">Labelled images.</param>
    /// <param name="options">Timesteps, sample count, batching, seed, clipping (the model, data and log folder are not read).</param>
    /// <param name="log">Receives a line per batch.</param>
    /// <exception cref="ConfigurationException">An option is out of range.</exception>
    public static EpsilonErrorResult Measure(DenoiserFn model, bool classConditional, ReverseProcess process, int imageSize, IImageSource source,
        EpsilonErrorOptions options, Action<string>? log = null, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(process);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        int steps = process.Diffusion.NumTimesteps;
        options.Validate(steps);
        var timesteps = options.Timesteps.Count > 0 ? options.Timesteps : EpsilonErrorOptions.DefaultTimesteps(steps);
        var sums = timesteps.Select(_ => new Sums()).ToArray();
        device ??= CPU;
        using var generator = new Generator((ulong)options.Seed, device);
        var noise = Noise.From(generator);
        var data = new DataOptions { ImageSize = imageSize, BatchSize = options.BatchSize, NumWorkers = options.NumWorkers };
        double inputSpread = 0;
        int done = 0;
        long pixels = 0;
        using (no_grad())
        {
            foreach (var batch in DataLoader.EnumerateOnce(source, data, device))
            {
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    int count = Math.Min(batch.Count, options.NumSamples - done);
                    var x0 = batch.Images.narrow(0, 0, count);
                    var y = classConditional ? batch.Labels.narrow(0, 0, count).to_type(ScalarType.Int64) : null;
                    // One draw per image, reused at every t: the rows then differ by the noise level alone.
                    var eps = noise(x0);
                    var eps64 = eps.to_type(ScalarType.Float64);
                    pixels = x0.shape[2] * x0.shape[3];
                    for (int i = 0; i < timesteps.Count; i++)
                    {
                        using var step = NewDisposeScope();
                        var t = full(new long[] { count }, timesteps[i], dtype: ScalarType.Int64, device: device);
                        var xt = process.Diffusion.QSample(x0, t, eps);
                        var (epsHat, xstart) = Predict(model, process, xt, t, y, options.ClipDenoised);
                        var (shifted, _) = Predict(model, process, xt + OffsetProbe, t, y, options.ClipDenoised);
                        var epsHat64 = epsHat.to_type(ScalarType.Float64);
                        var gain = (shifted.to_type(ScalarType.Float64) - epsHat64) / OffsetProbe;
                        sums[i].Add(epsHat64 - eps64, eps64, ChannelSpreadSum(xstart), gain);
                    }
                    // After the model calls: the first read-back of a batch is then the model's (see DevicePlacementTests).
                    inputSpread += ChannelSpreadSum(x0);
                    done += count;
                    log?.Invoke($"done {done} images");
                }
                if (done >= options.NumSamples) break;
            }
        }
        if (done == 0) throw new ConfigurationException("data_dir", "holds no images to measure.");
        var rows = timesteps.Select((t, i) => sums[i].Row(t, done, pixels)).ToArray();
        return new EpsilonErrorResult(done, steps, options.Seed, inputSpread / (done * pixels), rows);
    }

    /// <summary>
    /// Writes <c>eps_eval.json</c> (the <see cref="EpsilonErrorResult"/>) and <c>eps_eval.csv</c> into
    /// <paramref name="directory"/>, each whole (temporary name, then renamed). Returns the paths.
    /// </summary>
    public static IReadOnlyList<string> WriteFiles(EpsilonErrorResult result, string directory)
    {
        ArgumentNullException.ThrowIfNull(result);
        Directory.CreateDirectory(directory);
        string json = Path.Combine(directory, "eps_eval.json"), csv = Path.Combine(directory, "eps_eval.csv");
        AtomicFile.Write(json, s => JsonSerializer.Serialize(s, result, new JsonSerializerOptions { WriteIndented = true }));
        var text = Encoding.UTF8.GetBytes(result.ToCsv());
        AtomicFile.Write(csv, s => s.Write(text));
        return [json, csv];
    }

    /// <summary>ε̂ and the x̂₀ estimate from one model call, for either parameterisation.</summary>
    private static (Tensor EpsHat, Tensor Xstart) Predict(DenoiserFn model, ReverseProcess process, Tensor xt, Tensor t, Tensor? y, bool clip)
    {
        var output = model(xt, process.Diffusion.ModelTimesteps(t), y);
        long channels = xt.shape[1];
        long expected = process.ModelLearnsVariance ? 2 * channels : channels;
        if (output.dim() != 4 || output.shape[1] != expected)
            throw new ConfigurationException("model_path",
                $"the model outputs [{string.Join(", ", output.shape)}] but its process needs {expected} channels for {channels}-channel images.");
        // With a learned variance the first C channels are the prediction, as in p_mean_variance.
        var prediction = process.ModelLearnsVariance ? output.narrow(1, 0, channels) : output;
        Tensor epsHat, xstart;
        if (process.MeanType == ModelMeanType.StartX)
        {
            xstart = prediction;
            epsHat = process.PredictEpsFromXstart(xt, t, prediction);
        }
        else
        {
            epsHat = prediction;
            xstart = process.PredictXstartFromEps(xt, t, prediction);
        }
        return (epsHat, clip ? xstart.clamp(-1, 1) : xstart);
    }

    /// <summary>Σ over images and pixels of the population std across channels of x [B, C, H, W], in float64.</summary>
    private static double ChannelSpreadSum(Tensor x) =>
        x.to_type(ScalarType.Float64).std(1, unbiased: false).sum().item<double>();

    /// <summary>Float64 running sums of one timestep's row.</summary>
    private sealed class Sums
    {
        private double[] _error = [], _eps = [], _square = [], _imageError = [], _imageEps = [], _gain = [];
        private double _spread;

        public void Add(Tensor error, Tensor eps, double spreadSum, Tensor gain)
        {
            Accumulate(ref _gain, gain.sum(new long[] { 0, 2, 3 }));
            Accumulate(ref _error, error.sum(new long[] { 0, 2, 3 }));
            Accumulate(ref _eps, eps.sum(new long[] { 0, 2, 3 }));
            Accumulate(ref _square, error.square().sum(new long[] { 0, 2, 3 }));
            Accumulate(ref _imageError, error.mean(new long[] { 2, 3 }).square().sum(new long[] { 0 }));
            Accumulate(ref _imageEps, eps.mean(new long[] { 2, 3 }).square().sum(new long[] { 0 }));
            _spread += spreadSum;
        }

        public EpsilonErrorRow Row(int t, int images, long pixels)
        {
            double values = (double)images * pixels;
            double[] Mean(double[] s) => s.Select(v => v / values).ToArray();
            double[] Rms(double[] s) => s.Select(v => Math.Sqrt(v / images)).ToArray();
            return new EpsilonErrorRow(t, Mean(_error), Mean(_eps), Mean(_square), Rms(_imageError), Rms(_imageEps), _spread / values, Mean(_gain));
        }

        private static void Accumulate(ref double[] sums, Tensor perChannel)
        {
            var values = ComputeDevice.ToArray<double>(perChannel);
            if (sums.Length == 0) sums = new double[values.Length];
            for (int c = 0; c < values.Length; c++) sums[c] += values[c];
        }
    }
}
