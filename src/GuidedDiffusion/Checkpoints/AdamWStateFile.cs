using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GuidedDiffusion.Checkpoints;

/// <summary>
/// PyTorch's AdamW <c>state_dict()</c> (<c>{"state": {index: {step, exp_avg, exp_avg_sq[, max_exp_avg_sq]}},
/// "param_groups": [{lr, betas, eps, weight_decay, amsgrad, ..., params}]}</c>) into a TorchSharp AdamW.
/// </summary>
internal static class AdamWStateFile
{
    /// <summary>Checks everything first, then replaces the optimizer's state and options in one go.</summary>
    public static void Apply(AdamW optimizer, IReadOnlyList<string> names, string path, object? loaded)
    {
        var parameters = optimizer.parameters().ToList();
        if (names.Count != parameters.Count)
            throw new ArgumentException($"{names.Count} names for {parameters.Count} optimizer parameters", nameof(names));
        CheckpointException Bad(string what) => new(path, $"Optimizer state '{path}' {what}.");

        if (loaded is not PickleDict file || !file.TryGet("state", out var stateObject) || !file.TryGet("param_groups", out var groupsObject)
            || stateObject is not PickleDict states || groupsObject is not List<object?> groups || groups.Count == 0)
            throw Bad("is not an optimizer state_dict (expected a dict with 'state' and 'param_groups')");
        if (groups.Any(g => g is not PickleDict))
            throw Bad("has a param group that is not a dict");
        var options = groups.Cast<PickleDict>().ToList();
        var stateKeys = options.SelectMany(g => g.TryGet("params", out var p) && p is List<object?> list ? list : throw Bad("has a param group without its 'params' list")).ToList();

        // The state of each of our parameters, in model order: (step, exp_avg, exp_avg_sq, max_exp_avg_sq).
        var perParameter = new (long Step, Tensor? ExpAvg, Tensor? ExpAvgSq, Tensor? MaxExpAvgSq)[parameters.Count];
        if (stateKeys.Count == parameters.Count)
        {
            for (int i = 0; i < parameters.Count; i++)
                perParameter[i] = Moments(states, stateKeys[i], Bad);
        }
        else if (stateKeys.Count == 2 && FlatLayout(parameters) is var (vectors, matrices)
            && StateNumel(states, stateKeys[0]) == vectors.Sum(i => parameters[i].numel())
            && StateNumel(states, stateKeys[1]) == matrices.Sum(i => parameters[i].numel()))
        {
            // The original's fp16 MixedPrecisionTrainer optimises two flat master tensors; split them back.
            foreach (var (key, members) in new[] { (stateKeys[0], vectors), (stateKeys[1], matrices) })
            {
                var (step, expAvg, expAvgSq, maxExpAvgSq) = Moments(states, key, Bad);
                long offset = 0;
                foreach (int i in members)
                {
                    long n = parameters[i].numel();
                    Tensor? Part(Tensor? flat) => flat?.reshape(-1).narrow(0, offset, n).reshape(parameters[i].shape);
                    perParameter[i] = (step, Part(expAvg), Part(expAvgSq), Part(maxExpAvgSq));
                    offset += n;
                }
            }
        }
        else
        {
            throw Bad($"holds state for {stateKeys.Count} parameters but the model has {parameters.Count} " +
                "(nor is it the original's fp16 layout of two flat tensors of the same total size): it was written for a different model");
        }

        var groupOptions = options.Select(g => ParseOptions(g, Bad)).ToList();
        bool amsgrad = groupOptions.Any(g => g.Amsgrad);
        for (int i = 0; i < parameters.Count; i++)
        {
            var (_, expAvg, expAvgSq, maxExpAvgSq) = perParameter[i];
            foreach (var (what, moment) in new[] { ("exp_avg", expAvg), ("exp_avg_sq", expAvgSq), ("max_exp_avg_sq", maxExpAvgSq) })
            {
                if (moment is not null && !moment.shape.SequenceEqual(parameters[i].shape))
                    throw Bad($"has {what} of shape [{string.Join(", ", moment.shape)}] for parameter '{names[i]}', which has shape [{string.Join(", ", parameters[i].shape)}]");
            }
            if ((expAvg is null) != (expAvgSq is null))
                throw Bad($"has only one of exp_avg and exp_avg_sq for parameter '{names[i]}'");
            if (amsgrad && expAvg is not null && maxExpAvgSq is null)
                throw Bad($"uses amsgrad but has no max_exp_avg_sq for parameter '{names[i]}'");
        }

        // Everything fits: write into the optimizer's live state and options (copies, so ownership never moves).
        var dict = optimizer.state_dict();
        for (int group = 0; group < Math.Min(groupOptions.Count, dict.Options.Count); group++)
            groupOptions[group].ApplyTo((AdamW.Options)dict.Options[group]);
        using (no_grad())
        {
            for (int i = 0; i < parameters.Count; i++)
            {
                var (step, expAvg, expAvgSq, maxExpAvgSq) = perParameter[i];
                var state = (AdamW.State)dict.State[i];
                // A parameter the original never stepped has no state: it starts from zero, as in PyTorch.
                state.step = expAvg is null ? 0 : step;
                Set(state.exp_avg, expAvg);
                Set(state.exp_avg_sq, expAvgSq);
                if (amsgrad)
                {
                    state.max_exp_avg_sq ??= zeros_like(parameters[i]).DetachFromDisposeScope();
                    Set(state.max_exp_avg_sq, maxExpAvgSq);
                }
            }
        }
    }

    private static void Set(Tensor target, Tensor? value)
    {
        if (value is null) target.zero_();
        else target.copy_(value);
    }

    /// <summary>The largest <c>step</c> among the states of an optimizer state_dict, or null when there is none.</summary>
    public static long? MaxStep(object? loaded)
    {
        if (loaded is not PickleDict file || !file.TryGet("state", out var s) || s is not PickleDict states) return null;
        long? max = null;
        foreach (var (key, _) in states.Entries)
        {
            var (step, expAvg, _, _) = Moments(states, key, what => new CheckpointException("", what));
            if (expAvg is not null) max = Math.Max(max ?? 0, step);
        }
        return max;
    }

    /// <summary>The original's flat fp16 groups: indices of parameters with ndim ≤ 1, then of the others.</summary>
    private static (List<int> Vectors, List<int> Matrices) FlatLayout(IReadOnlyList<Tensor> parameters) =>
        (Enumerable.Range(0, parameters.Count).Where(i => parameters[i].dim() <= 1).ToList(),
         Enumerable.Range(0, parameters.Count).Where(i => parameters[i].dim() > 1).ToList());

    private static long StateNumel(PickleDict states, object? key) =>
        key is not null && states.TryGet(key, out var s) && s is PickleDict state && state.TryGet("exp_avg", out var m) && m is Tensor t ? t.numel() : -1;

    private static (long Step, Tensor? ExpAvg, Tensor? ExpAvgSq, Tensor? MaxExpAvgSq) Moments(PickleDict states, object? key, Func<string, CheckpointException> bad)
    {
        if (key is null || !states.TryGet(key, out var stateObject) || stateObject is null)
            return (0, null, null, null);
        if (stateObject is not PickleDict state)
            throw bad($"has a state entry {key} that is not a dict");
        if (state.Count == 0) return (0, null, null, null);
        Tensor? Moment(string name) => state.TryGet(name, out var v) ? v as Tensor ?? (v is null ? null : throw bad($"has a state entry {key} whose {name} is not a tensor")) : null;
        long step = state.TryGet("step", out var s) ? s switch
        {
            long l => l,
            double d => checked((long)d),
            Tensor t => checked((long)t.to_type(ScalarType.Float64).item<double>()),
            _ => throw bad($"has a state entry {key} whose step is not a number"),
        } : throw bad($"has a state entry {key} without its step");
        return (step, Moment("exp_avg"), Moment("exp_avg_sq"), Moment("max_exp_avg_sq"));
    }

    private sealed record GroupOptions(double Lr, double? InitialLr, double Beta1, double Beta2, double Eps, double WeightDecay, bool Amsgrad, bool Maximize)
    {
        public void ApplyTo(AdamW.Options target)
        {
            target.LearningRate = Lr;
            if (InitialLr is { } initial) target.InitialLearningRate = initial;
            target.beta1 = Beta1;
            target.beta2 = Beta2;
            target.eps = Eps;
            target.weight_decay = WeightDecay;
            target.amsgrad = Amsgrad;
            target.maximize = Maximize;
        }
    }

    private static GroupOptions ParseOptions(PickleDict group, Func<string, CheckpointException> bad)
    {
        double Number(string key) => group.TryGet(key, out var v) ? v switch
        {
            double d => d,
            long l => l,
            Tensor t => t.to_type(ScalarType.Float64).item<double>(),
            _ => throw bad($"has a param group whose {key} is not a number"),
        } : throw bad($"has a param group without '{key}'");
        bool Flag(string key) => group.TryGet(key, out var v) && v is true;
        if (!group.TryGet("betas", out var betasObject) || betasObject is not object?[] { Length: 2 } betas)
            throw bad("has a param group without its two betas");
        double Beta(object? b) => b switch { double d => d, long l => l, _ => throw bad("has a beta that is not a number") };
        return new GroupOptions(Number("lr"), group.TryGet("initial_lr", out var initial) && initial is double d0 ? d0 : null,
            Beta(betas[0]), Beta(betas[1]), Number("eps"), Number("weight_decay"), Flag("amsgrad"), Flag("maximize"));
    }
}
