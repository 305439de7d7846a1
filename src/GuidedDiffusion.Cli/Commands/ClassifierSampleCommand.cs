using System.CommandLine;
using System.Diagnostics;
using GuidedDiffusion.Diffusion.Solvers;
using GuidedDiffusion.Guidance;

namespace GuidedDiffusion.Cli.Commands;

/// <summary>
/// <c>guided-diffusion classifier-sample</c>: the original's <c>scripts/classifier_sample.py</c>. Loads a diffusion
/// model and a noise-aware classifier, samples with classifier guidance (ancestral, DDIM, or the fast solvers
/// DPM-Solver, DPM-Solver++ and UniPC, optionally within a guidance interval), and writes the
/// original's <c>samples_NxHxWx3.npz</c> (arr_0: uint8 NHWC images, arr_1: int64 labels) plus a PNG grid.
/// </summary>
internal static class ClassifierSampleCommand
{
    /// <summary>The sampling flags of classifier_sample.py, bound to <see cref="GuidedSamplingOptions"/>.</summary>
    public static readonly FlagTable<GuidedSamplingOptions> Table = new();

    static ClassifierSampleCommand()
    {
        Table.Add("classifier_path", "Classifier checkpoint; its JSON sidecar, if any, supplies the classifier architecture.", o => o.ClassifierPath, (o, v) => o with { ClassifierPath = v });
        Table.Add("classifier_scale", "Guidance scale: the classifier gradient is multiplied by it (0 disables guidance).", o => o.ClassifierScale, (o, v) => o with { ClassifierScale = v });
        Table.Add(DenoisingFlags.NumSamples, o => o.NumSamples, (o, v) => o with { NumSamples = v }, help: "Number of images to generate.");
        Table.Add(DataFlags.BatchSize, o => o.BatchSize, (o, v) => o with { BatchSize = v });
        Table.Add("use_ddim", "DDIM steps (eta 0) instead of ancestral sampling; pair with --timestep_respacing ddimN.", o => o.UseDdim, (o, v) => o with { UseDdim = v });
        Table.Add<SamplerKind, string>("sampler", "Sampler: ancestral, ddim (as --use_ddim True), or a fast ODE solver over the full process: dpm_solver, dpm_solver++, unipc.",
            o => o.Sampler, (o, v) => o with { Sampler = v }, SamplerKinds.Parse, v => v.Spelling());
        Table.Add("steps", "Fast solvers: steps, i.e. model evaluations per sample (10-25 is their range).", o => o.Solver.Steps, (o, v) => o with { Solver = o.Solver with { Steps = v } });
        Table.Add("solver_order", "Fast solvers: order 1, 2 or 3 (dpm_solver++ 2 = 2M; 3 = 3M; with --solver_method singlestep 2 = 2S; 1 = DDIM's update, the best at strong guidance scales: docs/guided-sampling.md).",
            o => o.Solver.Order, (o, v) => o with { Solver = o.Solver with { Order = v } });
        Table.Add<SolverMethod, string>("solver_method", "DPM-Solver(++): multistep or singlestep (UniPC is multistep only).",
            o => o.Solver.Method, (o, v) => o with { Solver = o.Solver with { Method = v } },
            v => Spellings.Parse<SolverMethod>(v, "solver_method", "method"), v => v.Spelling());
        Table.Add<SkipType, string>("skip_type", "Fast solvers: time-step spacing, time_uniform, logSNR or time_quadratic.",
            o => o.Solver.SkipType, (o, v) => o with { Solver = o.Solver with { SkipType = v } },
            v => Spellings.Parse<SkipType>(v, "skip_type", "spacing"), v => v.Spelling());
        Table.Add("lower_order_final", "Fast solvers: lower the order of the last steps (DPM-Solver multistep: only below 10 steps, as its reference).",
            o => o.Solver.LowerOrderFinal, (o, v) => o with { Solver = o.Solver with { LowerOrderFinal = v } });
        Table.Add("thresholding", "dpm_solver++ / unipc: dynamic thresholding of the x0 predictions (ratio 0.995, max value 1).",
            o => o.Solver.Thresholding, (o, v) => o with { Solver = o.Solver with { Thresholding = v } });
        Table.Add<UniPCVariant, string>("unipc_variant", "UniPC's B(h): bh1 or bh2 (recommended for guided sampling).",
            o => o.Solver.Variant, (o, v) => o with { Solver = o.Solver with { Variant = v } },
            v => Spellings.Parse<UniPCVariant>(v, "unipc_variant", "variant"), v => v.Spelling());
        Table.Add<GuidanceInterval?, string>("guidance_interval", "Guide only while the classifier's timestep is in lo,hi (0 = clean .. diffusion_steps-1), e.g. 200,800; empty: everywhere. Any sampler.",
            o => o.GuidanceInterval, (o, v) => o with { GuidanceInterval = v }, v => GuidanceInterval.Parse(v), v => v?.ToString() ?? "");
        // The fast solvers clip where their reference implementations do, which classifier-sample says.
        Table.Add(DenoisingFlags.ClipDenoised, o => o.ClipDenoised, (o, v) => o with { ClipDenoised = v },
            help: "Clip the x0 predictions to [-1, 1] (the fast solvers: the model's x0, before guidance; False gives the reference solvers' behaviour).");
        Table.Add<int?, int>("class_id", "Class to generate (-1: a random class per image, like the original).", o => o.ClassId, (o, v) => o with { ClassId = v },
            id => id >= 0 ? id : null, id => id ?? -1);
        Table.Add(SeedFlags.Seed, o => o.Seed, (o, v) => o with { Seed = v });
        Table.Add("out_dir", "Folder for samples_NxHxWx3.npz and the PNG grid (created if missing).", o => o.OutDir, (o, v) => o with { OutDir = v });
    }

    public static Command Create()
    {
        var command = new Command("classifier-sample", "Sample images from a diffusion model guided by a noise-aware classifier (classifier_sample.py).");
        var model = DiffusionModelSourceFlags.AddTo(command);
        var sampling = Table.AddTo(command, new GuidedSamplingOptions());
        var classifier = ClassifierModelFlags.AddBesideDiffusionModel(command);
        var run = RunFlags.AddDeviceTo(command);

        command.SetAction(parse => CliErrors.Guard(() =>
        {
            var options = sampling.Bind(parse) with
            {
                Model = model.Bind(parse),
                Classifier = classifier.Bind(parse),
                ClassifierSettingsGiven = ClassifierModelFlags.ArchitectureGiven(classifier, parse),
            };
            bool interactive = CliConsole.ErrorIsTerminal;
            var clock = Stopwatch.StartNew();
            new GuidedSamplingJob(options, JobRun.For(parse, run))
            {
                OnStep = (batch, batches, step, total) =>
                {
                    if (interactive) CliConsole.Error.Write($"\rbatch {batch + 1}/{batches}  step {step}/{total}  {clock.Elapsed:hh\\:mm\\:ss}");
                },
                OnBatch = () => { if (interactive) CliConsole.Error.WriteLine(); },
            }.Run();
            return 0;
        }));
        return command;
    }
}
