using System.Diagnostics;
using System.Globalization;
using ClockLM.Chat;
using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Tensors;

namespace ClockLM.Bench.Server;

/// <summary>
/// Where serving loses what batching gains, without HTTP: in one process, repetitions alternate between
/// (a) <see cref="BatchDecoder"/> stepping 1 and then N sequences (the forward pass alone), and (b) a
/// <see cref="SlotScheduler"/> with N slots running 1 and then N greedy requests submitted together (prompt, sampling,
/// detokenizing and streaming included; nobody reads the stream until the end). Prints decode tokens/s of each and the
/// N/1 ratios; a scheduler ratio well below the decoder's is the scheduler's loss.
/// Usage: <c>ClockLM.Bench --scheduler-quick --model M [--threads 2] [--slots 8] [--tokens 32] [--reps 3]</c>.
/// </summary>
public static class SchedulerQuick
{
    public static int Run(string[] args)
    {
        string? model = Option(args, "--model");
        int threads = Int(args, "--threads", Environment.ProcessorCount);
        int slots = Int(args, "--slots", 8);
        int tokens = Int(args, "--tokens", 32);
        int reps = Int(args, "--reps", 3);
        if (model is null || threads < 1 || slots < 2 || tokens < 2 || reps < 1)
        {
            Console.Error.WriteLine("usage: --scheduler-quick --model M [--threads T>=1] [--slots N>=2] [--tokens K>=2] [--reps R>=1]");
            return 2;
        }
        using var m = Model.Load(model);
        using var pool = new WorkerPool(threads - 1);
        var decoder = new BatchDecoder(m.Config, m.Weights, pool);
        int context = tokens + 16;
        var one = new[] { decoder.CreateSequence(context) };
        var many = Enumerable.Range(0, slots).Select(_ => decoder.CreateSequence(context)).ToArray();
        using var scheduler = new SlotScheduler(m, new SlotSchedulerOptions { Slots = slots, ContextLength = context + 32, Pool = pool });
        var prompt = m.Tokenizer.Encode("Once upon a time").ToArray();

        Console.WriteLine($"{Path.GetFileName(model)}, {threads} threads, 1 vs {slots} sequences, {tokens} tokens each, {reps} repetitions (first discarded as warm-up)");
        var rows = new Dictionary<string, List<double>>();
        void Add(string name, double value) => (rows.TryGetValue(name, out var l) ? l : rows[name] = []).Add(value);
        for (int r = 0; r <= reps; r++)
        {
            double d1 = Throughput.BatchGenerationTokensPerSecond(decoder, one, tokens);
            double s1 = SchedulerTokensPerSecond(scheduler, prompt, 1, tokens);
            double dn = Throughput.BatchGenerationTokensPerSecond(decoder, many, tokens);
            double sn = SchedulerTokensPerSecond(scheduler, prompt, slots, tokens);
            if (r == 0) continue;
            Add("decoder x1", d1); Add($"decoder x{slots}", dn); Add("scheduler x1", s1); Add($"scheduler x{slots}", sn);
            Add("decoder ratio", dn / d1); Add("scheduler ratio", sn / s1);
            Console.WriteLine($"rep {r}: decoder {d1:F1} -> {dn:F1} t/s ({dn / d1:F2}x), scheduler {s1:F1} -> {sn:F1} t/s ({sn / s1:F2}x)");
        }
        foreach (var (name, values) in rows)
            Console.WriteLine($"{name,-16} median {Throughput.Median(values):F2}");
        var stats = scheduler.Stats;
        Console.WriteLine($"scheduler: {stats.GeneratedTokens} tokens, {stats.BatchedTokens} in batched rounds, {stats.BatchFallbacks} fallbacks");
        return 0;
    }

    /// <summary>Submits <paramref name="count"/> greedy requests at once and waits for all: generated tokens per second
    /// from the first sampled token to the last (the decode rounds; the prompts are read before).</summary>
    private static double SchedulerTokensPerSecond(SlotScheduler scheduler, int[] prompt, int count, int tokens)
    {
        var request = new CompletionRequest
        {
            PromptIds = prompt, MaxTokens = tokens, Sampler = SamplerOptions.Greedy, IgnoreEndOfGeneration = true, CachePrompt = false,
        };
        var jobs = Enumerable.Range(0, count).Select(_ => scheduler.Submit(request)).ToArray();
        // The clock starts when every job has its first token, so the prompts' rounds are not counted.
        foreach (var job in jobs) job.Updates.WaitToReadAsync().AsTask().GetAwaiter().GetResult();
        var clock = Stopwatch.StartNew();
        Task.WaitAll(jobs.Select(j => j.Result).ToArray());
        double seconds = clock.Elapsed.TotalSeconds;
        return count * (tokens - 1) / seconds;
    }

    private static string? Option(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static int Int(string[] args, string name, int fallback) =>
        Option(args, name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
}
