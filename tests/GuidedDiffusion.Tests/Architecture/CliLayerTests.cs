using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Diffusion;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Models;

namespace GuidedDiffusion.Tests.Architecture;

/// <summary>
/// The CLI's layering rule (docs/ARCHITECTURE.md): a command binds flags into a job's options, runs the job and prints
/// its result; it does not load models, build processes or touch tensors. Checked on the compiled CLI: every library
/// type its metadata references (a use anywhere, in any spelling, leaves a type reference) must be on the job surface:
/// <list type="number">
/// <item>a job (a public library type named <c>…Job</c>) and what its public constructors, <c>Run</c> methods and
/// properties expose, following the public properties and base types of each type reached (options, results and the
/// records inside them: <see cref="ClassifierSource"/>, <see cref="DiffusionModelSource"/>, configs, reports; not methods,
/// so <see cref="ClassifierSource.Load"/>'s <see cref="TrainedClassifier"/> stays out);</item>
/// <item>an exception (the CLI turns it into its one-line error), an enum, or an enum's spelling helper (<c>LabelRule</c> →
/// <c>LabelRules</c>);</item>
/// <item>the foundation's binding helpers (<see cref="Binding"/>), process start-up (Runtime) and the doctor's report (Diagnostics).</item>
/// </list>
/// </summary>
public sealed class CliLayerTests
{
    private static readonly Assembly Library = typeof(RunContext).Assembly;

    /// <summary>What flag binding needs from the foundation: setting names in messages, list settings, enum spellings, the device.</summary>
    private static readonly Type[] Binding = [typeof(SettingText), typeof(SettingList<>), typeof(Spellings), typeof(ComputeDevice)];

    /// <summary>Namespaces a program uses before and beside any job: start-up settings (Program.Main) and the doctor's report.</summary>
    private static readonly string[] ProcessNamespaces = ["GuidedDiffusion.Runtime", "GuidedDiffusion.Diagnostics"];

    /// <summary>
    /// Uses outside the rule that exist today, each to be removed (then delete its line).
    /// </summary>
    private static readonly Dictionary<string, string> Exceptions = new()
    {
        // image-train's length flags bind to it; no job exposes it (the job takes the TrainingLength it converts to).
        ["GuidedDiffusion.Training.ImageTrainLength"] = "image-train's length flags bind to it (reached from no job)",
    };

    [Fact]
    public void Cli_UsesOnlyTheJobSurface()
    {
        var surface = JobSurface();
        var violations = LibraryTypesUsedByCli()
            .Where(name => !IsAllowed(name, surface) && !Exceptions.ContainsKey(name))
            .Order(StringComparer.Ordinal).ToList();
        Assert.True(violations.Count == 0, "the CLI uses library internals (call a job instead; see docs/ARCHITECTURE.md):\n" + string.Join("\n", violations));
    }

    [Fact]
    public void Exceptions_AreStillNeeded()
    {
        // An entry nobody needs any more must go, so the list only shrinks.
        var used = LibraryTypesUsedByCli();
        var surface = JobSurface();
        var stale = Exceptions.Keys.Where(name => !used.Contains(name) || IsAllowed(name, surface)).ToList();
        Assert.True(stale.Count == 0, "allowed exceptions no longer needed: " + string.Join(", ", stale));
    }

    [Fact]
    public void Rule_KeepsInternalsOut_AndLetsTheJobsRecordsIn()
    {
        // The rule is only as good as its surface: models, loaders, processes and tensors must stay outside it.
        var surface = JobSurface();
        foreach (var type in new[] { typeof(TrainedDiffusionModel), typeof(TrainedClassifier), typeof(UNetModel), typeof(EncoderUNet),
                     typeof(ReverseProcess), typeof(GaussianDiffusion), typeof(StateDictIO), typeof(NoiseLevelEvaluator) })
            Assert.False(IsAllowed(type.FullName!, surface), $"{type.FullName} is on the CLI's surface");
        foreach (var type in new[] { typeof(ImageNllOptions), typeof(ImageNllResult), typeof(DiffusionModelSource), typeof(ClassifierSource),
                     typeof(DiffusionModelConfig), typeof(ImageClassification), typeof(RunContext), typeof(ConfigurationException) })
            Assert.True(IsAllowed(type.FullName!, surface), $"{type.FullName} is not on the CLI's surface");
    }

    private static bool IsAllowed(string name, HashSet<string> surface)
    {
        if (surface.Contains(name) || ProcessNamespaces.Any(ns => name.StartsWith(ns + ".", StringComparison.Ordinal))) return true;
        var type = Library.GetType(name);
        if (type is null) return false;
        if (type.IsEnum || typeof(Exception).IsAssignableFrom(type) || Binding.Contains(type)) return true;
        // An enum's spelling helper: LabelRules for LabelRule.
        return type.IsAbstract && type.IsSealed && name.EndsWith('s') && Library.GetType(name[..^1]) is { IsEnum: true };
    }

    /// <summary>The jobs and every library type their public surface reaches (see the class comment), by full name.</summary>
    private static HashSet<string> JobSurface()
    {
        var reached = new HashSet<Type>();
        var queue = new Queue<Type>();
        void Reach(Type? type)
        {
            if (type is null) return;
            if (type.HasElementType) { Reach(type.GetElementType()); return; }
            if (type.IsGenericType)
            {
                foreach (var argument in type.GetGenericArguments()) Reach(argument);
                type = type.GetGenericTypeDefinition();
            }
            if (type.Assembly == Library && !type.IsGenericParameter && reached.Add(type)) queue.Enqueue(type);
        }

        foreach (var job in Library.GetExportedTypes().Where(t => t.IsClass && t.Name.EndsWith("Job", StringComparison.Ordinal)))
        {
            Reach(job);
            foreach (var constructor in job.GetConstructors()) foreach (var p in constructor.GetParameters()) Reach(p.ParameterType);
            foreach (var run in job.GetMethods(BindingFlags.Public | BindingFlags.Instance).Where(m => m.Name == "Run"))
            {
                Reach(run.ReturnType);
                foreach (var p in run.GetParameters()) Reach(p.ParameterType);
            }
        }
        while (queue.Count > 0)
        {
            var type = queue.Dequeue();
            Reach(type.BaseType);
            foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly))
                Reach(property.PropertyType);
        }
        return reached.Select(t => t.FullName!).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>Every library type the compiled CLI references (its metadata's type references into the library), by full name; nested types by their outermost.</summary>
    private static HashSet<string> LibraryTypesUsedByCli()
    {
        using var stream = File.OpenRead(typeof(GuidedDiffusion.Cli.Program).Assembly.Location);
        using var pe = new PEReader(stream);
        var metadata = pe.GetMetadataReader();
        var library = Library.GetName().Name;
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var handle in metadata.TypeReferences)
        {
            var reference = metadata.GetTypeReference(handle);
            while (reference.ResolutionScope.Kind == HandleKind.TypeReference)
                reference = metadata.GetTypeReference((TypeReferenceHandle)reference.ResolutionScope);
            if (reference.ResolutionScope.Kind != HandleKind.AssemblyReference
                || metadata.GetString(metadata.GetAssemblyReference((AssemblyReferenceHandle)reference.ResolutionScope).Name) != library)
                continue;
            used.Add($"{metadata.GetString(reference.Namespace)}.{metadata.GetString(reference.Name)}");
        }
        Assert.Contains(typeof(ConfigurationException).FullName!, used);  // the reader works: every command can fail
        return used;
    }
}
