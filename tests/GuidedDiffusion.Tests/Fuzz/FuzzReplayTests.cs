using GuidedDiffusion.Fuzz;
using GuidedDiffusion.Tests.Data;

namespace GuidedDiffusion.Tests.Fuzz;

/// <summary>
/// Replays every seed and every crash file of fuzz/ through its target's entry point (no fuzzing here), so an
/// input that crashed a parser once stays fixed. The files are copied next to the tests (see the .csproj).
/// </summary>
public class FuzzReplayTests
{
    private static string Root => Path.Combine(AppContext.BaseDirectory, "Fuzz");

    public static TheoryData<string, string> Files()
    {
        var data = new TheoryData<string, string>();
        foreach (var kind in new[] { "corpus", "crashes" })
            foreach (var target in FuzzTargets.Names)
            {
                var dir = Path.Combine(Root, kind, target);
                if (!Directory.Exists(dir)) continue;
                foreach (var file in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
                    data.Add(target, Path.GetRelativePath(Root, file));
            }
        return data;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void File_ParsesOrFailsWithTheParsersOwnError(string target, string file)
    {
        FuzzTargets.Run(target, File.ReadAllBytes(Path.Combine(Root, file)), TestImages.TempDir());
    }

    [Fact]
    public void EveryTarget_HasASeedCorpus()
    {
        foreach (var target in FuzzTargets.Names)
            Assert.NotEmpty(Directory.GetFiles(Path.Combine(Root, "corpus", target)));
    }
}
