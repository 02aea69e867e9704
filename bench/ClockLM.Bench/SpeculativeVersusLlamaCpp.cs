using System.Diagnostics;
using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Tensors;
using LLama;
using LLama.Common;
using LLama.Native;

namespace ClockLM.Bench;

/// <summary>
/// `--speculative-vs-llamacpp`: greedy decoding of a real prompt, without and with drafts, on ClockLM and on llama.cpp
/// (LLamaSharp's native build) in one process, alternating. LLamaSharp exposes no speculative decoding of its own, so
/// llama.cpp's side is llama-speculative's loop written here over its native calls: the same drafter proposes tokens
/// (prompt lookup, or the draft model run by llama.cpp in a context of its own), llama.cpp verifies the token and its
/// drafts in one llama_decode with logits for every row, keeps the drafts its greedy choice agrees with, and removes the
/// rows after the first rejection from its KV cache (llama_memory_seq_rm). Both engines draft as many tokens per pass
/// as <see cref="DraftLength"/> says. Each drafted run must give the engine's own plain tokens. Prints decode tokens/s
/// per engine with and without drafts, the speed-ups and the acceptance. With --replay each engine drafts its own plain
/// run's tokens, every draft right, as a text that copies its context verbatim would be drafted by prompt lookup: the
/// most drafting can gain, set by what a verification pass costs against single tokens.
/// Usage: --model M (--lookup N | --model-draft D | --replay) (--prompt TEXT | --prompt-file F) [-n 64] [-t 1,2] [-r 3]
/// [--draft-max 16] [--draft-p-min 0.75] [--settle MS] --speculative-vs-llamacpp
/// </summary>
public static class SpeculativeVersusLlamaCpp
{
    public static int Run(string[] args)
    {
        string? model = null, draftPath = null, text = null;
        int lookup = 0, n = 64, reps = 3, draftMax = 16, settle = 250;
        float pMin = 0.75f;
        bool replay = false;
        int[] threads = [1, 2];
        try
        {
            for (int i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                switch (args[i])
                {
                    case "--model" or "-m": model = Next(); break;
                    case "--model-draft" or "-md": draftPath = Next(); break;
                    case "--lookup": lookup = int.Parse(Next()); break;
                    case "--replay": replay = true; break;
                    case "--prompt": text = Next(); break;
                    case "--prompt-file": text = File.ReadAllText(Next()); break;
                    case "-n": n = int.Parse(Next()); break;
                    case "-t": threads = Next().Split(',').Select(int.Parse).ToArray(); break;
                    case "-r": reps = int.Parse(Next()); break;
                    case "--draft-max": draftMax = int.Parse(Next()); break;
                    case "--draft-p-min": pMin = float.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                    case "--settle": settle = int.Parse(Next()); break;
                    case "--speculative-vs-llamacpp": break;
                    default: throw new ArgumentException($"unknown argument '{args[i]}'");
                }
            }
            if (model is null || text is null) throw new ArgumentException("--model and --prompt (or --prompt-file) are required");
            if ((draftPath is not null ? 1 : 0) + (lookup != 0 ? 1 : 0) + (replay ? 1 : 0) != 1)
                throw new ArgumentException("give one of --lookup N, --model-draft D and --replay");
            if (n < 2 || reps < 1 || draftMax < 1 || threads.Any(t => t < 1)) throw new ArgumentException("counts must be positive (-n at least 2)");
        }
        catch (Exception e) when (e is ArgumentException or FormatException or IOException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }

        NativeLogConfig.llama_log_set((level, message) => { });
        using var target = Model.Load(model);
        using var draft = draftPath is null ? null : Model.Load(draftPath);
        var speculative = new SpeculativeOptions { Lookup = lookup, DraftModel = draft, DraftMax = draftMax, DraftPMin = pMin };
        int[] prompt = target.Tokenizer.Encode(text).ToArray();
        int context = prompt.Length + n + draftMax + 8;
        string drafter = replay ? "replaying the engine's own plain tokens (every draft right)"
            : draft is null ? $"prompt lookup (n-gram {lookup})" : $"draft model {Path.GetFileName(draftPath)} (p-min {pMin})";
        Console.WriteLine($"{Path.GetFileName(model)}, drafts by {drafter}, draft-max {draftMax}, prompt {prompt.Length} tokens, {n} generated");
        Console.WriteLine($"| {"engine",-9} | {"threads",7} | {"plain t/s",10} | {"drafted t/s",11} | {"speed-up",8} | {"acceptance",10} | {"passes",6} |");
        Console.WriteLine($"| {new string('-', 9)} | {new string('-', 7)} | {new string('-', 10)} | {new string('-', 11)} | {new string('-', 8)} | {new string('-', 10)} | {new string('-', 6)} |");
        foreach (int t in threads)
        {
            var parameters = new ModelParams(model)
            {
                ContextSize = (uint)context, BatchSize = (uint)Math.Max(prompt.Length, draftMax + 1), UBatchSize = (uint)Math.Max(prompt.Length, draftMax + 1),
                GpuLayerCount = 0, Threads = t, BatchThreads = t,
            };
            using var weights = LLamaWeights.LoadFromFile(parameters);
            using var llama = weights.CreateContext(parameters);
            LLamaWeights? draftWeights = null;
            LLamaContext? draftContext = null;
            if (draftPath is not null)
            {
                var draftParameters = new ModelParams(draftPath)
                {
                    ContextSize = (uint)context, BatchSize = (uint)(Math.Max(prompt.Length, draftMax + 1) + 8), UBatchSize = (uint)(Math.Max(prompt.Length, draftMax + 1) + 8),
                    GpuLayerCount = 0, Threads = t, BatchThreads = t,
                };
                draftWeights = LLamaWeights.LoadFromFile(draftParameters);
                draftContext = draftWeights.CreateContext(draftParameters);
            }
            try
            {
                var expected = LlamaCppGreedy(llama, prompt, n, null, draftMax, out _).Tokens;
                IDrafter NewDrafter() => replay ? new ReplayDrafter([.. prompt, .. expected])
                    : draftContext is null ? new PromptLookupDrafter(lookup) : new LlamaCppDraftModel(draftContext, pMin);
                var clock = replay ? ClockLMReplay(target, prompt, n, t, reps, draftMax) : SpeculativeThroughput.Measure(target, speculative, prompt, n, t, reps);
                var plain = new double[reps];
                var drafted = new double[reps];
                var stats = new SpeculativeStats();
                var differences = new SortedSet<string>();
                LlamaCppGreedy(llama, prompt, n, NewDrafter(), draftMax, out _); // warm-up
                for (int r = 0; r < reps; r++)
                {
                    Thread.Sleep(settle);
                    plain[r] = Rate(LlamaCppGreedy(llama, prompt, n, null, draftMax, out _), expected, n, "plain", differences);
                    Thread.Sleep(settle);
                    var run = LlamaCppGreedy(llama, prompt, n, NewDrafter(), draftMax, out var runStats);
                    drafted[r] = Rate(run, expected, n, "drafted", differences);
                    stats += runStats;
                }
                Print("ClockLM", t, clock.Plain.Median, clock.Drafted.Median, clock.Stats);
                Print("llama.cpp", t, Throughput.Median(plain), Throughput.Median(drafted), stats);
                foreach (string difference in differences) Console.WriteLine($"  note: {difference}");
            }
            finally
            {
                draftContext?.Dispose();
                draftWeights?.Dispose();
            }
        }
        return 0;
    }

    /// <summary>Drafts the tokens a plain run chose after the same sequence (none once the sequence has left it).</summary>
    private sealed class ReplayDrafter(int[] sequence) : IDrafter
    {
        public int Draft(ReadOnlySpan<int> tokens, Span<int> draft)
        {
            int k = Math.Min(draft.Length, sequence.Length - tokens.Length);
            if (k <= 0 || !tokens.SequenceEqual(sequence.AsSpan(0, tokens.Length))) return 0;
            sequence.AsSpan(tokens.Length, k).CopyTo(draft);
            return k;
        }
    }

    /// <summary>ClockLM's side of --replay: greedy decoding of n tokens without drafts and with the plain run's tokens
    /// replayed as drafts (SpeculativeDecoder), alternating after one warm-up of each; every drafted run must give the
    /// plain tokens.</summary>
    private static SpeculativeThroughputResult ClockLMReplay(Model target, int[] prompt, int n, int threads, int reps, int draftMax)
    {
        using var pool = new WorkerPool(threads - 1);
        var transformer = target.CreateTransformer(prompt.Length + n + 1, pool);
        var options = new SpeculativeOptions { Lookup = 1, DraftMax = draftMax };
        int[]? expected = null;
        (int[] Tokens, double Seconds) Run(SpeculativeDecoder? decoder)
        {
            transformer.Cache.Truncate(0);
            var logits = decoder is null ? transformer.Evaluate(prompt, 0) : decoder.Evaluate(prompt, 0);
            var tokens = new int[n];
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < n; i++)
            {
                tokens[i] = ArgMax(logits, out _);
                if (i + 1 == n) break;
                logits = decoder is null ? transformer.Forward(tokens[i], prompt.Length + i) : decoder.Forward(tokens[i], prompt.Length + i, n - i - 2);
            }
            double seconds = clock.Elapsed.TotalSeconds;
            if (expected is not null && !tokens.AsSpan().SequenceEqual(expected))
                throw new InvalidOperationException($"ClockLM's replayed run gave other tokens than its plain run (first difference at {tokens.AsSpan().CommonPrefixLength(expected)})");
            return (tokens, seconds);
        }
        SpeculativeDecoder Drafted() => new(transformer, new ReplayDrafter([.. prompt, .. expected!]), options);
        expected = Run(null).Tokens; // warm-up, and the tokens every run must give
        Run(Drafted());
        var plain = new double[reps];
        var drafted = new double[reps];
        var stats = new SpeculativeStats();
        for (int r = 0; r < reps; r++)
        {
            plain[r] = n / Run(null).Seconds;
            var decoder = Drafted();
            drafted[r] = n / Run(decoder).Seconds;
            stats += decoder.Stats;
        }
        return new SpeculativeThroughputResult(new ThroughputResult($"tg{n}", threads, plain), new ThroughputResult($"tg{n}+replay", threads, drafted), stats, n);
    }

    private static void Print(string engine, int t, double plain, double drafted, SpeculativeStats stats) =>
        Console.WriteLine($"| {engine,-9} | {t,7} | {plain,10:F2} | {drafted,11:F2} | {drafted / plain,8:F2} | {stats.AcceptanceRate,10:P1} | {stats.Passes,6} |");

    /// <summary>Tokens per second of a run; a run whose tokens are not the plain run's is noted (llama.cpp's products of
    /// several rows round otherwise than one row's, so a near tie can fall the other way when it verifies drafts).</summary>
    private static double Rate((int[] Tokens, double Seconds) run, int[] expected, int n, string what, ISet<string> differences)
    {
        if (!run.Tokens.AsSpan().SequenceEqual(expected))
            differences.Add($"llama.cpp's {what} runs gave other tokens than its first plain run (first difference at token {run.Tokens.AsSpan().CommonPrefixLength(expected)})");
        return n / run.Seconds;
    }

    /// <summary>
    /// n tokens chosen greedily by llama.cpp after <paramref name="prompt"/>, and the seconds they took after the prompt:
    /// one token per llama_decode without a drafter; with one, the token and its drafts per llama_decode (every row's
    /// logits), the rows after the first rejection removed from the cache.
    /// </summary>
    private static (int[] Tokens, double Seconds) LlamaCppGreedy(LLamaContext context, int[] prompt, int n, IDrafter? drafter, int draftMax, out SpeculativeStats stats)
    {
        var ctx = context.NativeHandle;
        ctx.MemoryClear();
        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Length; i++) batch.Add((LLamaToken)prompt[i], (LLamaPos)i, LLamaSeqId.Zero, i == prompt.Length - 1);
        Check(ctx.Decode(batch));
        int next = ArgMax(ctx.GetLogitsIth(prompt.Length - 1), out _);
        var history = new List<int>(prompt) { next };
        var generated = new List<int> { next };
        var drafts = new int[draftMax];
        var length = new DraftLength();
        long passes = 0, drafted = 0, accepted = 0;
        int pos = prompt.Length; // where `next` runs
        var clock = Stopwatch.StartNew();
        while (generated.Count < n)
        {
            int k = 0;
            if (drafter is not null)
            {
                int max = Math.Min(length.Next(0, draftMax), n - generated.Count - 1);
                if (max > 0) k = drafter.Draft(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(history), drafts.AsSpan(0, max));
            }
            batch.Clear();
            batch.Add((LLamaToken)next, (LLamaPos)pos, LLamaSeqId.Zero, true);
            for (int i = 0; i < k; i++) batch.Add((LLamaToken)drafts[i], (LLamaPos)(pos + 1 + i), LLamaSeqId.Zero, true);
            Check(ctx.Decode(batch));
            int row = 0;
            while (true)
            {
                next = ArgMax(ctx.GetLogitsIth(row), out _);
                generated.Add(next);
                history.Add(next);
                if (generated.Count == n || row == k || next != drafts[row]) break;
                row++;
            }
            if (k > 0)
            {
                (passes, drafted, accepted) = (passes + 1, drafted + k, accepted + row);
                length.Record(k, row);
            }
            pos += row + 1;
            // The rows after the last kept one (drafts the model did not choose) leave the cache.
            if (row < k) ctx.MemorySequenceRemove(LLamaSeqId.Zero, (LLamaPos)pos, (LLamaPos)(-1));
        }
        double seconds = clock.Elapsed.TotalSeconds;
        stats = new SpeculativeStats(passes, drafted, accepted);
        return (generated.ToArray(), seconds);
    }

    /// <summary>A draft model run by llama.cpp: greedy, in a context of its own, caught up from where its tokens and the
    /// sequence part (the later rows removed), stopping at a token it gives less than p-min (as DraftModelDrafter).</summary>
    private sealed class LlamaCppDraftModel(LLamaContext context, float pMin) : IDrafter
    {
        private readonly List<int> _cached = [];
        private readonly LLamaBatch _batch = new();

        public int Draft(ReadOnlySpan<int> tokens, Span<int> draft)
        {
            var ctx = context.NativeHandle;
            int n = tokens.Length;
            int common = Math.Min(_cached.Count, n - 1);
            common = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_cached)[..common].CommonPrefixLength(tokens[..common]);
            ctx.MemorySequenceRemove(LLamaSeqId.Zero, (LLamaPos)common, (LLamaPos)(-1));
            _cached.RemoveRange(common, _cached.Count - common);
            _batch.Clear();
            for (int i = common; i < n; i++) _batch.Add((LLamaToken)tokens[i], (LLamaPos)i, LLamaSeqId.Zero, i == n - 1);
            Check(ctx.Decode(_batch));
            foreach (int id in tokens[common..]) _cached.Add(id);
            int logitsRow = n - 1 - common, k = 0;
            while (true)
            {
                int next = ArgMax(ctx.GetLogitsIth(logitsRow), out float p);
                if (p < pMin) break;
                draft[k++] = next;
                if (k == draft.Length) break;
                _batch.Clear();
                _batch.Add((LLamaToken)next, (LLamaPos)(n + k - 1), LLamaSeqId.Zero, true);
                Check(ctx.Decode(_batch));
                _cached.Add(next);
                logitsRow = 0;
            }
            return k;
        }
    }

    /// <summary>The draft model's greedy choice and its probability, by the rule ClockLM's drafter uses.</summary>
    private static int ArgMax(ReadOnlySpan<float> logits, out float probability) =>
        ClockLM.Generation.DraftModelDrafter.ArgMax(logits, out probability);

    private static void Check(DecodeResult result)
    {
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode failed: {result}");
    }
}
