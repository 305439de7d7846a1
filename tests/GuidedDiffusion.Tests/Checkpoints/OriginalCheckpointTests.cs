using System.IO.Compression;
using System.Text.Json;
using GuidedDiffusion.Checkpoints;
using GuidedDiffusion.Models;
using GuidedDiffusion.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace GuidedDiffusion.Tests.Checkpoints;

/// <summary>
/// Files written by the original's own scripts (Reference/checkpoints/original, see its README) and hand-made
/// torch.save files, one per rebuild function and layout (Reference/checkpoints/handmade).
/// </summary>
public class OriginalCheckpointTests
{
    private const string Original = "checkpoints/original";
    private const string HandMade = "checkpoints/handmade";

    /// <summary>The flags classifier_train.py was run with (the smallest classifier it can build).</summary>
    internal static ClassifierConfig ClassifierFlags => new()
    {
        ImageSize = 64, Width = 64, Depth = 0, AttentionResolutions = [8], UseScaleShiftNorm = false,
        ResblockUpdown = false, Pool = ClassifierPool.Adaptive, NumClasses = 1000,
    };

    /// <summary>
    /// The architecture image_train.py was run with. It was given <c>--attention_resolutions 16</c>, which its single
    /// level never reaches (so no attention outside the middle block); we refuse such a resolution, so none here.
    /// </summary>
    internal static DiffusionModelConfig UNetFlags => new()
    {
        ImageSize = 64, NumChannels = 32, NumResBlocks = 0, ChannelMult = [1], AttentionResolutions = [], NumHeads = 1,
    };

    private static JsonElement Expected(string file) => Reference.Json($"{Original}/expected.json").GetProperty(file);

    /// <summary>x[0,c,h,w] = f32(0.8·sin(0.05h + 0.07w + 1.1c)), the input expected.json's outputs were computed on.</summary>
    private static Tensor Input()
    {
        var x = new float[3 * 64 * 64];
        for (int c = 0; c < 3; c++)
            for (int h = 0; h < 64; h++)
                for (int w = 0; w < 64; w++)
                    x[(c * 64 + h) * 64 + w] = (float)(0.8 * Math.Sin(0.05 * h + 0.07 * w + 1.1 * c));
        return tensor(x).reshape(1, 3, 64, 64);
    }

    [Theory]
    [InlineData("classifier_train/model000001.pt")]
    [InlineData("image_train/model000002.pt")]
    [InlineData("image_train/ema_0.9999_000002.pt")]
    [InlineData("image_train_fp16/model000001.pt")]
    public void OriginalStateDict_ReadsAsTorchReadsIt(string file)
    {
        var tensors = StateDictIO.Read(Reference.PathOf($"{Original}/{file}"));
        try
        {
            var expected = Expected(file).GetProperty("tensors");
            Assert.Equal(expected.EnumerateObject().Select(p => p.Name).Order(), tensors.Keys.Order());
            foreach (var entry in expected.EnumerateObject())
            {
                var t = tensors[entry.Name];
                Assert.Equal(entry.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()), t.shape);
                Assert.Equal(ScalarType.Float32, t.dtype);
                double sum = t.to_type(ScalarType.Float64).sum().item<double>();
                double want = entry.Value.GetProperty("sum").GetDouble();
                Assert.True(Math.Abs(sum - want) <= 1e-9 + 1e-9 * Math.Abs(want), $"{file} {entry.Name}: sum {sum:R}, torch read {want:R}");
                var first = entry.Value.GetProperty("first").EnumerateArray().Select(e => e.GetDouble()).ToArray();
                Reference.AssertClose(t.reshape(-1)[..first.Length].Float64(), first, 0, 0, $"{file} {entry.Name}");
            }
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    [Fact]
    public void ClassifierTrainCheckpoint_LoadsAndGivesTheOriginalsLogits()
    {
        using var scope = NewDisposeScope();
        using var model = new EncoderUNet(ClassifierFlags);
        StateDictIO.Load(model, Reference.PathOf($"{Original}/classifier_train/model000001.pt"));
        model.eval();
        using var _ = no_grad();
        var logits = model.forward(Input(), tensor(new long[] { 5 }));
        var expected = Expected("classifier_train/model000001.pt").GetProperty("logits").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Reference.AssertClose(logits.reshape(-1).Float64(), expected, 1e-4, 1e-5, "logits of the original's classifier");
    }

    [Theory]
    [InlineData("image_train/model000002.pt")]
    [InlineData("image_train/ema_0.9999_000002.pt")]
    [InlineData("image_train_fp16/model000001.pt")]
    public void ImageTrainCheckpoint_LoadsAndGivesTheOriginalsOutput(string file)
    {
        using var scope = NewDisposeScope();
        using var model = new UNetModel(UNetFlags);
        StateDictIO.Load(model, Reference.PathOf($"{Original}/{file}"));
        model.eval();
        using var _ = no_grad();
        var output = model.forward(Input(), tensor(new long[] { 5 }), null).to_type(ScalarType.Float64);
        var expected = Expected(file);
        Reference.AssertClose([output.sum().item<double>(), output.abs().sum().item<double>()],
            [expected.GetProperty("output_sum").GetDouble(), expected.GetProperty("output_abs_sum").GetDouble()], 1e-4, 1e-3, $"{file} output sums");
        var first = expected.GetProperty("output_first").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Reference.AssertClose(output.reshape(-1)[..first.Length].Float64(), first, 1e-4, 1e-5, $"{file} output");
    }

    [Theory]
    [InlineData("classifier_train/opt000001.pt", true, 2)]
    [InlineData("image_train/opt000002.pt", false, 2)]
    [InlineData("image_train_fp16/opt000001.pt", false, 1)]
    public void OriginalOptimizerState_LoadsIntoAdamW(string file, bool classifier, long steps)
    {
        using var scope = NewDisposeScope();
        using nn.Module model = classifier ? new EncoderUNet(ClassifierFlags) : new UNetModel(UNetFlags);
        var named = model.named_parameters().ToArray();
        using var adamw = optim.AdamW(named.Select(p => p.parameter), lr: 0.5, weight_decay: 0.3);
        var path = Reference.PathOf($"{Original}/{file}");
        CheckpointStore.LoadOptimizer(adamw, named.Select(p => p.name).ToArray(), path);
        Assert.Equal(steps, CheckpointStore.OptimizerSteps(path));

        var expected = Expected(file);
        var group = expected.GetProperty("param_groups")[0];
        var options = (TorchSharp.Modules.AdamW.Options)adamw.state_dict().Options.Single();
        Assert.Equal(group.GetProperty("lr").GetDouble(), options.LearningRate);
        Assert.Equal(group.GetProperty("weight_decay").GetDouble(), options.weight_decay);

        var states = adamw.state_dict().State.Cast<TorchSharp.Modules.AdamW.State>().ToArray();
        Assert.All(states, s => Assert.Equal(steps, s.step));
        var files = expected.GetProperty("state").EnumerateObject().ToArray();
        double Sum(IEnumerable<Tensor> ts) => ts.Sum(t => t.to_type(ScalarType.Float64).sum().item<double>());
        if (files.Length == states.Length)
        {
            for (int i = 0; i < states.Length; i++)
            {
                var want = files[i].Value.GetProperty("exp_avg");
                Assert.Equal(want.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()), states[i].exp_avg.shape);
                Assert.Equal(want.GetProperty("sum").GetDouble(), Sum([states[i].exp_avg]), 9);
            }
        }
        else
        {
            // fp16: two flat tensors (ndim ≤ 1 parameters, then the rest) split back into one state per parameter.
            for (int flat = 0; flat < 2; flat++)
            {
                var members = Enumerable.Range(0, named.Length).Where(i => (named[i].parameter.dim() > 1) == (flat == 1)).ToArray();
                foreach (var moment in new[] { "exp_avg", "exp_avg_sq" })
                {
                    double got = Sum(members.Select(i => moment == "exp_avg" ? states[i].exp_avg : states[i].exp_avg_sq));
                    double want = files[flat].Value.GetProperty(moment).GetProperty("sum").GetDouble();
                    Assert.True(Math.Abs(got - want) <= 1e-6 * Math.Abs(want) + 1e-30, $"fp16 {moment} group {flat}: {got:R} vs {want:R}");
                }
            }
        }
    }

    [Fact]
    public void OptimizerState_ForAnotherModel_IsRefusedNamingTheCounts()
    {
        using var model = new UNetModel(UNetFlags);
        var named = model.named_parameters().ToArray();
        using var adamw = optim.AdamW(named.Select(p => p.parameter));
        var path = Reference.PathOf($"{Original}/classifier_train/opt000001.pt");
        var e = Assert.Throws<CheckpointException>(() => CheckpointStore.LoadOptimizer(adamw, named.Select(p => p.name).ToArray(), path));
        Assert.Contains("opt000001.pt", e.Message);
        Assert.Contains($"state for 42 parameters but the model has {named.Length}", e.Message);
        Assert.All(adamw.state_dict().State.Cast<TorchSharp.Modules.AdamW.State>(), s => Assert.Equal(0, s.step));
    }

    public static TheoryData<string> HandMadeStateDicts => new()
    {
        "rebuild_tensor_v2.pt", "rebuild_tensor_v1.pt", "rebuild_parameter.pt", "rebuild_parameter_short_args.pt",
        "rebuild_parameter_with_state.pt", "dtypes.pt", "views.pt", "legacy_format.pt",
    };

    [Theory]
    [MemberData(nameof(HandMadeStateDicts))]
    public void HandMadeFile_ReadsAsTorchWroteIt(string file)
    {
        var tensors = StateDictIO.Read(Reference.PathOf($"{HandMade}/{file}"));
        try
        {
            var expected = Reference.Json($"{HandMade}/expected.json").GetProperty(file);
            Assert.Equal(expected.EnumerateObject().Select(p => p.Name), tensors.Keys);
            foreach (var entry in expected.EnumerateObject())
            {
                var t = tensors[entry.Name];
                Assert.Equal(entry.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()), t.shape);
                Assert.Equal(entry.Value.GetProperty("dtype").GetString(), DTypeName(t.dtype));
                var values = entry.Value.GetProperty("values").EnumerateArray().Select(e => e.GetDouble()).ToArray();
                Reference.AssertClose(t.reshape(-1).Float64(), values, 0, 0, $"{file} {entry.Name}");
            }
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    [Fact]
    public void LegacyFormatAdamWState_LoadsIntoAdamW()
    {
        using var scope = NewDisposeScope();
        var p1 = new TorchSharp.Modules.Parameter(zeros(2, 3));
        var p2 = new TorchSharp.Modules.Parameter(zeros(3));
        using var adamw = optim.AdamW([p1, p2]);
        CheckpointStore.LoadOptimizer(adamw, ["p1", "p2"], Reference.PathOf($"{HandMade}/legacy_adamw.pt"));
        var expected = Reference.Json($"{HandMade}/expected.json").GetProperty("legacy_adamw.pt");
        var states = adamw.state_dict().State.Cast<TorchSharp.Modules.AdamW.State>().ToArray();
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(2, states[i].step);
            foreach (var (name, t) in new[] { ("exp_avg", states[i].exp_avg), ("exp_avg_sq", states[i].exp_avg_sq) })
            {
                var values = expected.GetProperty($"state.{i}.{name}").GetProperty("values").EnumerateArray().Select(e => e.GetDouble()).ToArray();
                Reference.AssertClose(t.reshape(-1).Float64(), values, 1e-7, 0, $"state {i} {name}");
            }
        }
        Assert.Equal(0.01, ((TorchSharp.Modules.AdamW.Options)adamw.state_dict().Options.Single()).weight_decay);
    }

    [Fact]
    public void WholeModelPickle_IsRefusedNamingItsClass_WithoutRunningAnything()
    {
        // torch.save(model) pickles the module's class; only data and tensors are read.
        var path = Path.Combine(Path.GetTempPath(), $"gd-whole-model-{Guid.NewGuid():N}.pt");
        try
        {
            using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
            using (var stream = zip.CreateEntry("archive/data.pkl").Open())
                stream.Write(Latin1("\u0080\u0002c__main__\nNet\nq\u0000)\u0081q\u0001."));
            var e = Assert.Throws<CheckpointException>(() => StateDictIO.Read(path));
            Assert.Contains("'__main__.Net'", e.Message);
            Assert.Contains(path, e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static byte[] Latin1(string text) => System.Text.Encoding.Latin1.GetBytes(text);

    private static string DTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 => "float64",
        ScalarType.Float32 => "float32",
        ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Int64 => "int64",
        ScalarType.Int32 => "int32",
        ScalarType.Int16 => "int16",
        ScalarType.Int8 => "int8",
        ScalarType.Byte => "uint8",
        ScalarType.Bool => "bool",
        _ => dtype.ToString(),
    };
}
