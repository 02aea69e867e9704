using System.Diagnostics;
using System.Globalization;
using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Tensors;

namespace ClockLM.Bench.Server;

/// <summary>
/// What per-request LoRA scales cost in the server's batched decoding, without HTTP. One <see cref="SlotScheduler"/>
/// per case, all in one process, the cases interleaved in every repetition: N greedy requests submitted together with
/// (a) no adapter, (b) one random adapter of rank R on every product and the output head, every request at scale 1
/// (one set of terms for the whole batch), (c) the same adapter with every request at its own scale (each row its own
/// terms: the per-row path). Prints decode tokens/s of each and the ratios b/a and c/b.
/// Usage: <c>ClockLM.Bench --lora-quick --model M [--threads 2] [--slots 4] [--rank 16] [--tokens 32] [--reps 3]</c>.
/// </summary>
public static class LoraQuick
{
    public static int Run(string[] args)
    {
        string? model = Option(args, "--model");
        int threads = Int(args, "--threads", Environment.ProcessorCount);
        int slots = Int(args, "--slots", 4);
        int rank = Int(args, "--rank", 16);
        int tokens = Int(args, "--tokens", 32);
        int reps = Int(args, "--reps", 3);
        if (model is null || threads < 1 || slots < 2 || rank < 1 || tokens < 2 || reps < 1)
        {
            Console.Error.WriteLine("usage: --lora-quick --model M [--threads T>=1] [--slots N>=2] [--rank R>=1] [--tokens K>=2] [--reps R>=1]");
            return 2;
        }
        using var m = Model.Load(model);
        using var pool = new WorkerPool(threads - 1);
        var adapter = RandomAdapter(m, rank);
        int context = tokens + 48;
        SlotScheduler Scheduler(IReadOnlyList<ScaledLora> lora) =>
            new(m, new SlotSchedulerOptions { Slots = slots, ContextLength = context, Pool = pool, Lora = lora });
        using var plain = Scheduler([]);
        using var adapted = Scheduler([new ScaledLora(adapter, 1f)]);
        var prompt = m.Tokenizer.Encode("Once upon a time").ToArray();
        LoraScale[] Same(int i) => [new LoraScale(0, 1f)];
        LoraScale[] Own(int i) => [new LoraScale(0, 0.5f + 0.25f * i)];

        Console.WriteLine($"{Path.GetFileName(model)}, {threads} threads, {slots} requests of {tokens} tokens, adapter rank {rank} " +
            $"({adapter.Pairs.Count} pairs, {adapter.Pairs.Values.Sum(p => (long)p.A.Length + p.B.Length):N0} values), {reps} repetitions (first discarded)");
        var rows = new Dictionary<string, List<double>>();
        void Add(string name, double value) => (rows.TryGetValue(name, out var l) ? l : rows[name] = []).Add(value);
        for (int r = 0; r <= reps; r++)
        {
            double a = TokensPerSecond(plain, prompt, slots, tokens, null);
            double b = TokensPerSecond(adapted, prompt, slots, tokens, Same);
            double c = TokensPerSecond(adapted, prompt, slots, tokens, Own);
            if (r == 0) continue;
            Add("no adapter", a); Add("one scale", b); Add("own scales", c); Add("one scale / none", b / a); Add("own / one scale", c / b);
            Console.WriteLine($"rep {r}: none {a:F1} t/s, one scale {b:F1} t/s ({b / a:F2}x), own scales {c:F1} t/s ({c / b:F2}x of one scale)");
        }
        foreach (var (name, values) in rows)
            Console.WriteLine($"{name,-17} median {Median(values):F2}");
        return 0;
    }

    /// <summary>Submits <paramref name="count"/> greedy requests at once (request i with <paramref name="scales"/>(i))
    /// and returns generated tokens per second from the moment every one has its first token.</summary>
    private static double TokensPerSecond(SlotScheduler scheduler, int[] prompt, int count, int tokens, Func<int, LoraScale[]>? scales)
    {
        var jobs = Enumerable.Range(0, count).Select(i => scheduler.Submit(new CompletionRequest
        {
            PromptIds = prompt, MaxTokens = tokens, Sampler = SamplerOptions.Greedy, IgnoreEndOfGeneration = true, CachePrompt = false,
            Lora = scales?.Invoke(i),
        })).ToArray();
        foreach (var job in jobs) job.Updates.WaitToReadAsync().AsTask().GetAwaiter().GetResult();
        var clock = Stopwatch.StartNew();
        Task.WaitAll(jobs.Select(j => j.Result).ToArray());
        return count * (tokens - 1) / clock.Elapsed.TotalSeconds;
    }

    /// <summary>A rank-<paramref name="rank"/> adapter with N(0, 0.02²)-ish values on every product of every layer and
    /// on the output head when the model has its own.</summary>
    private static LoraAdapter RandomAdapter(Model model, int rank)
    {
        var random = new Random(1);
        var pairs = new Dictionary<string, LoraPair>();
        LoraPair Pair(int rows, int cols) => new(
            Enumerable.Range(0, rank * cols).Select(_ => (float)(random.NextDouble() - 0.5) * 0.04f).ToArray(),
            Enumerable.Range(0, rows * rank).Select(_ => (float)(random.NextDouble() - 0.5) * 0.04f).ToArray(), rank, cols, rows);
        for (int l = 0; l < model.Config.Layers; l++)
            foreach (var target in Enum.GetValues<LoraTarget>())
            {
                var w = LoraAdapters.Matrix(model.Weights.Layers[l], target);
                if (w.Rows > 0) pairs[LoraAdapters.TensorName(l, target)] = Pair(w.Rows, w.Cols);
            }
        if (!model.Weights.TiedOutput) pairs["output.weight"] = Pair(model.Weights.Output.Rows, model.Weights.Output.Cols);
        return new LoraAdapter(model.Architecture, 2f * rank, pairs);
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string? Option(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static int Int(string[] args, string name, int fallback) =>
        Option(args, name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
}
