using System.Globalization;
using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Formats;
using GuidedDiffusion.Guidance;
using GuidedDiffusion.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Evaluation;

/// <summary>Options of <see cref="ImageNllJob"/> (the original's <c>scripts/image_nll.py</c> flags), with its defaults.</summary>
public sealed record ImageNllOptions
{
    /// <summary><c>--model_path</c> and the settings for a checkpoint without a sidecar; its respacing applies. The path is required.</summary>
    public DiffusionModelSource Model { get; init; } = new();

    /// <summary><c>--data_dir</c>: the image folder (labels from the file-name prefix); empty: the Fashion-MNIST demo's validation split.</summary>
    public string DataDir { get; init; } = "";

    /// <summary>Where the <c>*_terms.npz</c> files and <c>nll.json</c> go; empty: the checkpoint's folder.</summary>
    public string LogDir { get; init; } = "";

    /// <summary><c>--num_samples</c>: evaluate until at least this many images are done (whole batches). Default 1000.</summary>
    public int NumSamples { get; init; } = 1000;

    /// <summary><c>--batch_size</c>: images per <c>calc_bpd_loop</c> call. Default 1.</summary>
    public int BatchSize { get; init; } = 1;

    /// <summary><c>--clip_denoised</c>: clip the x₀ predictions to [−1, 1]. Default true.</summary>
    public bool ClipDenoised { get; init; } = true;

    /// <summary>Seed of the noise drawn at every timestep; a seed gives the same numbers on every run. Default 0.</summary>
    public int Seed { get; init; }

    /// <summary>Image-decoding threads (0: on the caller's thread). Default: one per processor.</summary>
    public int NumWorkers { get; init; } = Environment.ProcessorCount;

    /// <summary>Throws <see cref="ConfigurationException"/> naming the flag when an option is out of range.</summary>
    public void Validate()
    {
        if (NumSamples < 1) throw new ConfigurationException("num_samples", $"must be at least 1, got {NumSamples}.");
        if (BatchSize < 1) throw new ConfigurationException("batch_size", $"must be at least 1, got {BatchSize}.");
        if (NumWorkers < 0) throw new ConfigurationException("num_workers", $"must be 0 or more, got {NumWorkers}.");
    }
}

/// <summary>
/// What <see cref="ImageNllJob"/> measured, in bits per dimension, averaged over batches as the original does. The
/// per-timestep arrays keep <c>calc_bpd_loop</c>'s order: entry j is timestep T − 1 − j.
/// </summary>
/// <param name="Samples">Images evaluated (whole batches, so at least the requested number).</param>
/// <param name="NumTimesteps">T of the (respaced) process.</param>
/// <param name="TotalBpd">The bound on −log p(x) per dimension: the prior plus every VB term (the original's <c>bpd</c>).</param>
/// <param name="PriorBpd">KL(q(x_T | x₀) ‖ N(0, I)).</param>
/// <param name="VbQuartiles">Σ of the VB terms over the timesteps of each quarter of [0, T) (q0 = the least noise, with the decoder NLL).</param>
/// <param name="VbTerms">Mean VB term per timestep (the original's <c>vb_terms.npz</c>).</param>
/// <param name="MseTerms">Mean ε MSE per timestep (<c>mse_terms.npz</c>).</param>
/// <param name="XstartMseTerms">Mean x₀ MSE per timestep (<c>xstart_mse_terms.npz</c>).</param>
public sealed record ImageNllResult(int Samples, int NumTimesteps, double TotalBpd, double PriorBpd, double[] VbQuartiles,
    float[] VbTerms, float[] MseTerms, float[] XstartMseTerms)
{
    /// <summary>The files <see cref="ImageNllJob.Run"/> wrote (<see cref="ImageNllJob.WriteFiles"/>); empty from <see cref="ImageNllJob.Measure"/>.</summary>
    public IReadOnlyList<string> Files { get; init; } = [];

    /// <summary>The summary keys and values, in the order <see cref="ImageNllJob.WriteFiles"/> writes them.</summary>
    public IEnumerable<(string Key, double Value)> Summary()
    {
        yield return ("total_bpd", TotalBpd);
        yield return ("prior_bpd", PriorBpd);
        yield return ("vb_bpd", VbQuartiles.Sum());
        for (int q = 0; q < 4; q++) yield return ($"vb_q{q}", VbQuartiles[q]);
        yield return ("mse", MseTerms.Average(v => (double)v));
        yield return ("xstart_mse", XstartMseTerms.Average(v => (double)v));
        yield return ("samples", Samples);
        yield return ("num_timesteps", NumTimesteps);
    }
}

/// <summary>
/// The original's <c>scripts/image_nll.py</c>: the variational bound on the negative log-likelihood of images under
/// a diffusion model, in bits per dimension. Batches of whole images (the data restarts from the beginning when it
/// runs out, and each pass drops its last partial batch, like the original's loader) go through
/// <see cref="VariationalBound.CalcBpdLoop"/>; the per-batch means are averaged. Unlike the original, images are not
/// randomly flipped (its loader flips with an unseeded RNG) and the noise is seeded, so a run is reproducible.
/// </summary>
public sealed class ImageNllJob
{
    private readonly ImageNllOptions _options;
    private readonly RunContext _run;

    /// <summary>Prepares a job; <see cref="Run"/> does the work.</summary>
    /// <param name="options">The settings.</param>
    /// <param name="run">Device, the original's log lines, the decoder's limit (null: <see cref="RunContext"/>'s defaults).</param>
    public ImageNllJob(ImageNllOptions options, RunContext? run = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _run = run ?? new RunContext();
    }

    /// <summary>Loads the model and the data, measures, and writes the files into the log folder (default: the checkpoint's).</summary>
    /// <exception cref="ConfigurationException">A setting is invalid, or the data holds fewer images than a batch.</exception>
    /// <exception cref="CheckpointException">The checkpoint is missing or unreadable.</exception>
    public ImageNllResult Run()
    {
        var o = _options;
        if (o.Model.Path.Length == 0) throw new ConfigurationException("model_path", "is required: the diffusion model checkpoint.");
        o.Validate();
        _run.Validate();
        _run.Log("creating model and diffusion...");
        using var trained = o.Model.Load(_run.Device);
        if (trained.Sidecar is not null) _run.Log($"architecture and noise process from {trained.Sidecar}");
        _run.Log("creating data loader...");
        var source = JobInputs.ImagesOrDemo(o.DataDir, _run);
        _run.Log("evaluating...");
        var result = Measure(trained.Model, ReverseProcess.For(trained.Diffusion), source, o, _run.Log);
        var files = WriteFiles(result, JobInputs.OutputFolder(o.LogDir, o.Model.Path), _run.Log);
        _run.Log("evaluation complete");
        return result with { Files = files };
    }

    /// <summary>Evaluates <paramref name="model"/> on <paramref name="source"/> (the measurement of <see cref="Run"/>).</summary>
    /// <param name="model">The diffusion model (put in eval mode).</param>
    /// <param name="sampler">The process and parameterisation the model was trained with.</param>
    /// <param name="source">Images, centre-cropped to the model's size; labels are passed to a class-conditional model.</param>
    /// <param name="options">Sample count, batching, clipping and seed (the model, data and log folder are not read).</param>
    /// <param name="log">Receives the original's log lines ("done N samples: bpd=…").</param>
    /// <exception cref="ConfigurationException">An option is out of range, or the data holds fewer images than a batch.</exception>
    public static ImageNllResult Measure(UNetModel model, ReverseProcess sampler, IImageSource source, ImageNllOptions options, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sampler);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (source.Count < options.BatchSize)
            throw new ConfigurationException("batch_size", $"is {options.BatchSize} but the data holds only {source.Count} images (every batch is whole).");
        model.eval();
        var bound = new VariationalBound(sampler);
        // Everything runs where the model is; the noise comes from a generator there, as the original's th.randn_like.
        var device = model.parameters().First().device;
        using var generator = new Generator((ulong)options.Seed, device);
        var noise = Noise.From(generator);
        bool conditional = model.IsClassConditional;
        var data = new DataOptions { ImageSize = model.Options.ImageSize, BatchSize = options.BatchSize, NumWorkers = options.NumWorkers };
        int steps = sampler.Diffusion.NumTimesteps;
        var vb = new double[steps];
        var mse = new double[steps];
        var xstartMse = new double[steps];
        double totalSum = 0, priorSum = 0;
        int batches = 0, done = 0;
        DenoiserFn denoiser = (x, t, y) => model.forward(x, t, y);
        while (done < options.NumSamples)
        {
            foreach (var batch in DataLoader.EnumerateOnce(source, data, device))
            {
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    if (batch.Count < options.BatchSize) continue; // the original's loader drops the partial batch
                    var y = conditional ? batch.Labels.to_type(ScalarType.Int64) : null;
                    using var result = bound.CalcBpdLoop(denoiser, batch.Images, y, noise, options.ClipDenoised);
                    Accumulate(vb, result.Vb);
                    Accumulate(mse, result.Mse);
                    Accumulate(xstartMse, result.XstartMse);
                    totalSum += result.TotalBpd.mean().ToDouble();
                    priorSum += result.PriorBpd.mean().ToDouble();
                    batches++;
                    done += batch.Count;
                    log?.Invoke($"done {done} samples: bpd={(totalSum / batches).ToString("R", CultureInfo.InvariantCulture)}");
                }
                if (done >= options.NumSamples) break;
            }
        }

        var quartiles = new double[4];
        for (int j = 0; j < steps; j++)
        {
            int t = steps - 1 - j;
            quartiles[Math.Min(3, 4 * t / steps)] += vb[j] / batches;
        }
        return new ImageNllResult(done, steps, totalSum / batches, priorSum / batches, quartiles,
            Mean(vb, batches), Mean(mse, batches), Mean(xstartMse, batches));
    }

    /// <summary>
    /// Writes the original's <c>vb_terms.npz</c>, <c>mse_terms.npz</c> and <c>xstart_mse_terms.npz</c> (arr_0: float32 [T],
    /// entry j = timestep T − 1 − j) and our <c>nll.json</c> (the <see cref="ImageNllResult.Summary"/> keys) into
    /// <paramref name="directory"/>; each is written whole (temporary name, then renamed). Returns the paths.
    /// </summary>
    public static IReadOnlyList<string> WriteFiles(ImageNllResult result, string directory, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        Directory.CreateDirectory(directory);
        var written = new List<string>();
        foreach (var (name, terms) in new[] { ("vb", result.VbTerms), ("mse", result.MseTerms), ("xstart_mse", result.XstartMseTerms) })
        {
            var path = Path.Combine(directory, $"{name}_terms.npz");
            log?.Invoke($"saving {name} terms to {path}");
            var bytes = new byte[terms.Length * sizeof(float)];
            Buffer.BlockCopy(terms, 0, bytes, 0, bytes.Length);
            NpzWriter.Write(path, new NpzWriter.NpyArray("<f4", new long[] { terms.Length }, bytes.LongLength, s => s.Write(bytes)));
            written.Add(path);
        }
        var json = Path.Combine(directory, "nll.json");
        var summary = result.Summary().ToDictionary(kv => kv.Key, kv => kv.Value);
        var text = JsonSerializer.SerializeToUtf8Bytes(summary, new JsonSerializerOptions { WriteIndented = true });
        AtomicFile.Write(json, s => s.Write(text));
        written.Add(json);
        return written;
    }

    private static void Accumulate(double[] sums, Tensor perSample)
    {
        var means = ComputeDevice.ToArray<double>(perSample.mean(new long[] { 0 }).to_type(ScalarType.Float64));
        for (int j = 0; j < sums.Length; j++) sums[j] += means[j];
    }

    private static float[] Mean(double[] sums, int batches) => sums.Select(s => (float)(s / batches)).ToArray();
}
