using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Evaluation;
using GuidedDiffusion.Tests.Training;

namespace GuidedDiffusion.Tests.Cli;

public class ClassifyCommandTests : IClassFixture<EightClassRun>
{
    private readonly EightClassRun _run;

    public ClassifyCommandTests(EightClassRun run) => _run = run;

    /// <summary>The classification job in-process, serialized as <c>classify --json</c> prints it.</summary>
    private JsonElement Classify(int timestep = 0, long? noiseSeed = null)
    {
        var image = Path.Combine(_run.TrainDir, "class3_000.png");
        var results = new ClassificationJob(new ClassificationOptions
        {
            Classifier = new ClassifierSource { Path = Path.Combine(_run.LogDir, "model000029.pt") },
            Timestep = timestep,
            NoiseSeed = noiseSeed,
            Images = [image],
        }).Run();
        using var doc = JsonDocument.Parse(JsonSerializer.Serialize(results));
        return doc.RootElement.Clone();
    }

    [Fact]
    public void Json_HasLogitsAndTop5_ReadingTheArchitectureFromTheSidecar()
    {
        var entry = Classify().EnumerateArray().Single();
        Assert.EndsWith("class3_000.png", entry.GetProperty("path").GetString());
        Assert.Equal(8, entry.GetProperty("logits").GetArrayLength());
        var top = entry.GetProperty("top").EnumerateArray().ToArray();
        Assert.Equal(5, top.Length);
        var probs = top.Select(t => t.GetProperty("prob").GetDouble()).ToArray();
        Assert.Equal(probs.OrderByDescending(p => p), probs);
        Assert.InRange(probs.Sum(), 0, 1.0001);
    }

    [Fact]
    public void NoisedInput_IsDeterministicForASeed_AndDiffersFromClean()
    {
        double[] Logits(int timestep, long? noiseSeed) =>
            Classify(timestep, noiseSeed).EnumerateArray().Single().GetProperty("logits").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        var a = Logits(500, 7);
        var b = Logits(500, 7);
        var clean = Logits(500, null);
        Assert.Equal(a, b);
        Assert.NotEqual(a, clean);
    }

    [Fact]
    public void ConflictingArchitectureFlags_AreAnError()
    {
        var image = Path.Combine(_run.TrainDir, "class3_000.png");
        var result = CliRunner.InProcess("classify", "--model_path", Path.Combine(_run.LogDir, "model000029.pt"), "--classifier_width", "64", image);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("disagree", result.Error);
    }

    [Fact]
    public void MissingCheckpoint_NamesTheFile()
    {
        var result = CliRunner.InProcess("classify", "--model_path", "/no/such/model.pt", "x.png");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("/no/such/model.pt", result.Error);
    }
}
