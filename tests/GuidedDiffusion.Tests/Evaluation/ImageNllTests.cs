using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Cli;
using GuidedDiffusion.Data.Loading;
using GuidedDiffusion.Data.Sources;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Tests.Cli;
using GuidedDiffusion.Tests.Diffusion;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Evaluation;

/// <summary>
/// image-nll (the original's image_nll.py): the job on the reference's small learned-sigma UNet with its 10-step
/// respaced process, on the nine reference images, and the executable's error path.
/// </summary>
public class ImageNllTests
{
    private static (GuidedDiffusion.Models.UNetModel Model, ReverseProcess Sampler, IImageSource Source) Setup()
    {
        var json = LossReference.Json("vb_per_timestep");
        var model = LossReference.LoadUNet(json);
        var sampler = LossReference.LossFrom(json.GetProperty("diffusion_flags")).Process;
        return (model, sampler, new ImageFolderSource(Reference.PathOf("images/src")));
    }

    [Fact]
    public void Job_AveragesWholeBatchesOfCalcBpdLoop_RestartingTheData_Deterministically()
    {
        var (model, sampler, source) = Setup();
        using var _ = model;
        Assert.Equal(9, source.Count);
        var options = new ImageNllOptions { NumSamples = 10, BatchSize = 4, Seed = 3, NumWorkers = 0 };
        var lines = new List<string>();
        var result = ImageNllJob.Measure(model, sampler, source, options, lines.Add);

        // 9 images in batches of 4: [0-3], [4-7], the partial [8] dropped, then [0-3] again; 12 ≥ 10 samples.
        Assert.Equal(12, result.Samples);
        Assert.Equal(new[] { "done 4 samples: bpd=", "done 8 samples: bpd=", "done 12 samples: bpd=" }, lines.Select(l => l[..(l.IndexOf('=') + 1)]));

        // The same batches through calc_bpd_loop with the same noise stream, averaged per batch like the original.
        var noise = Noise.From(new Generator(3));
        var data = new DataOptions { ImageSize = 8, BatchSize = 4, NumWorkers = 0 };
        var bound = new VariationalBound(sampler);
        var batches = DataLoader.EnumerateOnce(source, data).Take(2).Concat(DataLoader.EnumerateOnce(source, data).Take(1)).ToList();
        double total = 0, prior = 0;
        var vb = new double[10];
        using (no_grad())
        {
            foreach (var batch in batches)
            {
                using var r = bound.CalcBpdLoop((x, t, y) => model.forward(x, t, y), batch.Images, null, noise);
                total += r.TotalBpd.mean().ToDouble() / 3;
                prior += r.PriorBpd.mean().ToDouble() / 3;
                var perT = r.Vb.mean(new long[] { 0 }).Float64();
                for (int j = 0; j < 10; j++) vb[j] += perT[j] / 3;
            }
        }
        Assert.Equal(total, result.TotalBpd, 1e-5);
        Assert.Equal(prior, result.PriorBpd, 1e-9);
        Reference.AssertClose(result.VbTerms.Select(v => (double)v).ToArray(), vb, 1e-6, 1e-6, "vb terms (loop order)");
        Assert.Equal(double.Parse(lines[^1][(lines[^1].IndexOf('=') + 1)..], System.Globalization.CultureInfo.InvariantCulture), result.TotalBpd);

        // Quartiles of T = 10: t 0-2 (with the decoder NLL, the last loop column), 3-4, 5-7, 8-9.
        Assert.Equal(vb[9] + vb[8] + vb[7], result.VbQuartiles[0], 1e-5);
        Assert.Equal(vb[0] + vb[1], result.VbQuartiles[3], 1e-5);
        Assert.Equal(result.TotalBpd, result.PriorBpd + result.VbQuartiles.Sum(), 1e-4);

        // Seeded: the same seed repeats exactly, another seed draws other noise.
        Assert.Equal(result.TotalBpd, ImageNllJob.Measure(model, sampler, source, options).TotalBpd);
        Assert.NotEqual(result.TotalBpd, ImageNllJob.Measure(model, sampler, source, options with { Seed = 4 }).TotalBpd);
    }

    [Fact]
    public void Files_HoldTheOriginalsTermArraysAndTheSummary()
    {
        var (model, sampler, source) = Setup();
        using var _ = model;
        var result = ImageNllJob.Measure(model, sampler, source, new ImageNllOptions { NumSamples = 2, BatchSize = 2, NumWorkers = 0 });
        var dir = Directory.CreateTempSubdirectory("image-nll-").FullName;
        try
        {
            var files = ImageNllJob.WriteFiles(result, dir);
            Assert.Equal(new[] { "vb_terms.npz", "mse_terms.npz", "xstart_mse_terms.npz", "nll.json" }, files.Select(Path.GetFileName));
            // np.load(vb_terms.npz)["arr_0"]: NPY 1.0, float32 [T] (NpzReader reads only images and labels).
            using var zip = System.IO.Compression.ZipFile.OpenRead(Path.Combine(dir, "vb_terms.npz"));
            Assert.Equal(new[] { "arr_0.npy" }, zip.Entries.Select(e => e.FullName));
            using var npy = new MemoryStream();
            using (var entry = zip.Entries[0].Open()) entry.CopyTo(npy);
            var bytes = npy.ToArray();
            int headerLength = BitConverter.ToUInt16(bytes, 8);
            var header = System.Text.Encoding.ASCII.GetString(bytes, 10, headerLength);
            Assert.Contains("'descr': '<f4'", header);
            Assert.Contains("'shape': (10,)", header);
            var values = new float[10];
            Buffer.BlockCopy(bytes, 10 + headerLength, values, 0, 40);
            Assert.Equal(result.VbTerms, values);
            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "nll.json")));
            Assert.Equal(result.Summary().Select(s => s.Key), json.RootElement.EnumerateObject().Select(p => p.Name));
            Assert.Equal(result.TotalBpd, json.RootElement.GetProperty("total_bpd").GetDouble());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Job_LoadsAnEmaCheckpoint_RespacesIt_FallsBackToTheDemo_AndWritesBesideTheCheckpoint()
    {
        var dir = Directory.CreateTempSubdirectory("image-nll-job-").FullName;
        try
        {
            var ema = TestCheckpoints.DiffusionModelAsEma(dir, Guidance.ClassifierSampleCommandTests.TinyUNet, new DiffusionConfig { LearnSigma = true });
            var output = new StringWriter();
            var result = new ImageNllJob(new ImageNllOptions
            {
                Model = new DiffusionModelSource { Path = ema, Diffusion = new DiffusionConfig { TimestepRespacing = "2" } },
                NumSamples = 2,
                BatchSize = 2,
                NumWorkers = 0,
            }, new RunContext { Output = output, Spelling = CliErrors.Flag }).Run();

            Assert.Equal(2, result.NumTimesteps);  // the respacing applies to a checkpoint with a sidecar
            Assert.Equal(2, result.Samples);
            var lines = output.ToString();
            Assert.Contains($"architecture and noise process from {Path.Combine(dir, "model000001.json")}", lines);
            Assert.Contains("No --data_dir given: the Fashion-MNIST demo's validation split (1000 images).", lines);
            Assert.Contains("evaluation complete", lines);
            Assert.Equal(new[] { "vb_terms.npz", "mse_terms.npz", "xstart_mse_terms.npz", "nll.json" }.Select(f => Path.Combine(dir, f)), result.Files);
            Assert.All(result.Files, f => Assert.True(File.Exists(f), f));
            Assert.Equal("model_path", Assert.Throws<ConfigurationException>(() => new ImageNllJob(new ImageNllOptions()).Run()).Setting);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void BadInput_IsOneLineNamingTheFlag()
    {
        var missing = CliRunner.InProcess("image-nll");
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("model_path", missing.Error);
        Assert.DoesNotContain("   at ", missing.Error);

        var noFile = CliRunner.InProcess("image-nll", "--model_path", "/no/such/model.pt");
        Assert.Equal(2, noFile.ExitCode);
        Assert.Contains("/no/such/model.pt", noFile.Error);
        Assert.Single(noFile.Error.Trim().Split('\n'));
    }
}
