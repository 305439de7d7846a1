using System.Reflection;
using System.Text.RegularExpressions;

namespace GuidedDiffusion.Tests.Architecture;

/// <summary>
/// Enforces the dependency rule of docs/ARCHITECTURE.md: each folder (namespace) of the library may use only
/// the folders listed for it below. References are found in the library's source: <c>using</c> directives,
/// fully qualified names (<c>GuidedDiffusion.X.Type</c>) and names qualified relative to an enclosing
/// namespace (<c>Diffusion.Type</c> inside <c>GuidedDiffusion.Training</c>), including doc-comment crefs.
/// </summary>
public sealed partial class LayerDependencyTests
{
    private const string Root = "GuidedDiffusion";

    /// <summary>Allowed uses per namespace; a namespace not listed here fails the test until it is placed.</summary>
    private static readonly Dictionary<string, string[]> Allowed = new()
    {
        [Root] = [],
        // Layer 1: independent building blocks, each on the foundation (root namespace) only.
        ["GuidedDiffusion.Data"] = [Root],
        ["GuidedDiffusion.Data.Resampling"] = [Root, "GuidedDiffusion.Data"],
        ["GuidedDiffusion.Data.Decoding"] = [Root, "GuidedDiffusion.Data"],
        ["GuidedDiffusion.Data.Sources"] = [Root, "GuidedDiffusion.Data", "GuidedDiffusion.Data.Decoding"],
        ["GuidedDiffusion.Data.Transforms"] = [Root, "GuidedDiffusion.Data", "GuidedDiffusion.Data.Resampling"],
        ["GuidedDiffusion.Data.Loading"] = [Root, "GuidedDiffusion.Data", "GuidedDiffusion.Data.Decoding", "GuidedDiffusion.Data.Sources", "GuidedDiffusion.Data.Transforms"],
        ["GuidedDiffusion.Diffusion"] = [Root],
        ["GuidedDiffusion.Diffusion.Solvers"] = [Root, "GuidedDiffusion.Diffusion"],
        ["GuidedDiffusion.Runtime"] = [Root],
        ["GuidedDiffusion.Formats"] = [Root],
        ["GuidedDiffusion.Diagnostics"] = [Root, "GuidedDiffusion.Runtime", "GuidedDiffusion.Models"],  // guided-diffusion doctor
        ["GuidedDiffusion.Models"] = [Root, "GuidedDiffusion.Runtime"],  // the kernel self-check names the CPU and poisons the allocator
        ["GuidedDiffusion.Distributed"] = [Root, "GuidedDiffusion.Distributed.Mpi", "GuidedDiffusion.Distributed.Posix"],
        ["GuidedDiffusion.Distributed.Mpi"] = [Root, "GuidedDiffusion.Distributed.Posix"],  // dlopen of libmpi
        ["GuidedDiffusion.Distributed.Posix"] = [Root],
        // Layer 2: checkpoint files, sidecars and the trained-model loaders.
        ["GuidedDiffusion.Checkpoints"] = [Root, "GuidedDiffusion.Diffusion", "GuidedDiffusion.Models"],
        // Layer 2: the L2 PGD attack on x_t, shared by robust training and robust evaluation.
        ["GuidedDiffusion.Adversarial"] = [Root, "GuidedDiffusion.Diffusion"],
        // Layer 3: the jobs of the original's scripts.
        ["GuidedDiffusion.Guidance"] = [Root, "GuidedDiffusion.Runtime", "GuidedDiffusion.Formats", "GuidedDiffusion.Diffusion", "GuidedDiffusion.Diffusion.Solvers", "GuidedDiffusion.Models", "GuidedDiffusion.Checkpoints", .. DataAll],
        ["GuidedDiffusion.Evaluation"] = [Root, "GuidedDiffusion.Adversarial", "GuidedDiffusion.Formats", "GuidedDiffusion.Diffusion", "GuidedDiffusion.Models", "GuidedDiffusion.Checkpoints", "GuidedDiffusion.Guidance", .. DataAll],
        ["GuidedDiffusion.Training"] = [Root, "GuidedDiffusion.Adversarial", "GuidedDiffusion.Runtime", "GuidedDiffusion.Diffusion", "GuidedDiffusion.Models", "GuidedDiffusion.Checkpoints", "GuidedDiffusion.Distributed", "GuidedDiffusion.Evaluation", .. DataAll],
    };

    private static string[] DataAll =>
        ["GuidedDiffusion.Data", "GuidedDiffusion.Data.Decoding", "GuidedDiffusion.Data.Sources", "GuidedDiffusion.Data.Transforms", "GuidedDiffusion.Data.Loading", "GuidedDiffusion.Data.Resampling"];

    [Fact]
    public void EveryNamespace_UsesOnlyTheLayersBelowIt()
    {
        var sources = LibrarySources();
        var violations = Violations(sources);
        Assert.True(violations.Count == 0, "forbidden references (see docs/ARCHITECTURE.md):\n" + string.Join("\n", violations));
    }

    [Fact]
    public void EveryNamespace_IsPlacedInTheRule()
    {
        var unplaced = LibrarySources().Select(s => s.Namespace).Distinct().Where(ns => !Allowed.ContainsKey(ns)).ToList();
        Assert.True(unplaced.Count == 0, "namespaces missing from the dependency rule: " + string.Join(", ", unplaced));
    }

    [Fact]
    public void Scanner_FindsEachKindOfReference()
    {
        // The rule is only as good as the scanner: each spelling of a forbidden reference must be caught.
        string[] spellings =
        [
            "using GuidedDiffusion.Training;\nnamespace GuidedDiffusion.Models;\nclass A { TrainingLoop? x; }",
            "namespace GuidedDiffusion.Models;\nclass A { GuidedDiffusion.Training.TrainingLoop? x; }",
            "namespace GuidedDiffusion.Models;\nclass A { Training.TrainingLoop? x; }",
            "namespace GuidedDiffusion.Models;\n/// <see cref=\"Training.TrainingLoop\"/>\nclass A { }",
            "using static GuidedDiffusion.Training.TrainingLoop;\nnamespace GuidedDiffusion.Models;\nclass A { }",
        ];
        var real = LibrarySources();
        foreach (var text in spellings)
        {
            var probe = new SourceFile("probe.cs", "GuidedDiffusion.Models", text);
            var violations = Violations([.. real, probe]);
            Assert.Contains(violations, v => v.StartsWith("probe.cs", StringComparison.Ordinal) && v.Contains("GuidedDiffusion.Training", StringComparison.Ordinal));
        }
        // A member access that merely shares a folder's name is not a reference.
        var harmless = new SourceFile("probe.cs", "GuidedDiffusion.Checkpoints", "namespace GuidedDiffusion.Checkpoints;\nclass A { object Training => manifest.Training; string s = Training.ToString(); }");
        Assert.DoesNotContain(Violations([.. real, harmless]), v => v.StartsWith("probe.cs", StringComparison.Ordinal));
    }

    [Fact]
    public void Library_DoesNotReferenceTheCommandLine()
    {
        // The library keeps no CLI spellings or parsers: it must not even reference System.CommandLine.
        var referenced = typeof(AtomicFile).Assembly.GetReferencedAssemblies().Select(a => a.Name).ToList();
        Assert.DoesNotContain("System.CommandLine", referenced);
        Assert.DoesNotContain("guided-diffusion", referenced);
    }

    private sealed record SourceFile(string Path, string Namespace, string Text);

    private static List<string> Violations(IReadOnlyList<SourceFile> sources)
    {
        // Types declared per namespace, so that "Diffusion.X" counts only when X is a type of that namespace.
        var types = sources.GroupBy(s => s.Namespace)
            .ToDictionary(g => g.Key, g => g.SelectMany(s => TypeDeclaration().Matches(s.Text).Select(m => m.Groups[1].Value)).ToHashSet(StringComparer.Ordinal));
        var violations = new List<string>();
        foreach (var file in sources)
        {
            if (!Allowed.TryGetValue(file.Namespace, out var allowed)) continue;  // reported by EveryNamespace_IsPlacedInTheRule
            foreach (var used in References(file, types).Distinct())
                if (used != file.Namespace && !allowed.Contains(used))
                    violations.Add($"{file.Path}: {file.Namespace} uses {used}");
        }
        return violations;
    }

    private static IEnumerable<string> References(SourceFile file, Dictionary<string, HashSet<string>> types)
    {
        foreach (Match m in UsingDirective().Matches(file.Text))
            if (Longest(m.Groups[1].Value, types.Keys) is { } ns) yield return ns;
        foreach (Match m in QualifiedName().Matches(file.Text))
            if (Longest(m.Value, types.Keys) is { } ns && m.Value.Length > ns.Length && IsTypeOf(m.Value[(ns.Length + 1)..], ns, types))
                yield return ns;
        // Relative names: inside GuidedDiffusion.A.B, "C.T" may mean GuidedDiffusion.A.C.T or GuidedDiffusion.C.T.
        var enclosing = Enclosing(file.Namespace).ToList();
        foreach (var ns in types.Keys)
            foreach (var outer in enclosing.Where(e => ns.StartsWith(e + ".", StringComparison.Ordinal)))
            {
                var relative = ns[(outer.Length + 1)..];
                foreach (Match m in Regex.Matches(file.Text, $@"(?<![\w.]){Regex.Escape(relative)}\.(\w+)"))
                    if (types[ns].Contains(m.Groups[1].Value)) yield return ns;
            }
    }

    private static bool IsTypeOf(string rest, string ns, Dictionary<string, HashSet<string>> types) =>
        types[ns].Contains(rest.Split('.')[0]);

    private static string? Longest(string name, IEnumerable<string> namespaces) =>
        namespaces.Where(ns => name == ns || name.StartsWith(ns + ".", StringComparison.Ordinal)).MaxBy(ns => ns.Length);

    private static IEnumerable<string> Enclosing(string ns)
    {
        for (var n = ns; n.Length > 0; n = n.Contains('.') ? n[..n.LastIndexOf('.')] : "")
            yield return n;
    }

    private static List<SourceFile> LibrarySources()
    {
        var dir = typeof(LayerDependencyTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "LibrarySourceDir").Value!;
        Assert.True(Directory.Exists(dir), $"library source folder '{dir}' not found");
        var files = Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .Select(f => (Path: Path.GetRelativePath(dir, f), Text: File.ReadAllText(f)))
            .Select(f => new SourceFile(f.Path, FileNamespace().Match(f.Text) is { Success: true } m ? m.Groups[1].Value : Root, f.Text))
            .ToList();
        Assert.True(files.Count > 50, $"only {files.Count} source files under '{dir}'");
        return files;
    }

    [GeneratedRegex(@"^namespace ([\w.]+);", RegexOptions.Multiline)]
    private static partial Regex FileNamespace();

    [GeneratedRegex(@"^using (?:static )?(?:\w+ = )?(GuidedDiffusion(?:\.\w+)*)", RegexOptions.Multiline)]
    private static partial Regex UsingDirective();

    [GeneratedRegex(@"(?<![\w.])GuidedDiffusion(?:\.\w+)+")]
    private static partial Regex QualifiedName();

    [GeneratedRegex(@"^\s*(?:[a-z]+\s+)*(?:class|record|struct|enum|interface)\s+(\w+)", RegexOptions.Multiline)]
    private static partial Regex TypeDeclaration();
}
