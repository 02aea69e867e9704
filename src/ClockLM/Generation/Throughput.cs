using System.Diagnostics;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Sampling.Grammars;
using ClockLM.Tensors;

namespace ClockLM.Generation;

/// <summary>One measured row of a throughput benchmark, as llama-bench reports it.</summary>
/// <param name="Test">"pp128" (prompt processing of 128 tokens) or "tg64" (generation of 64 tokens), with " @ d2048" when they
/// run after 2048 cached tokens.</param>
/// <param name="Threads">Threads used.</param>
/// <param name="Samples">Tokens per second of each repetition.</param>
public sealed record ThroughputResult(string Test, int Threads, double[] Samples)
{
    public double Mean => Samples.Average();
    public double Median => Throughput.Median(Samples);
    public double StandardDeviation => Samples.Length < 2 ? 0 : Math.Sqrt(Samples.Sum(v => (v - Mean) * (v - Mean)) / (Samples.Length - 1));
}

/// <summary>
/// Measures prompt processing (pp: N tokens evaluated from an empty cache) and text generation (tg: N tokens fed one
/// at a time from an empty cache), as llama-bench does; with a depth D, both run after D tokens already in the cache
/// (llama-bench's <c>-d</c>: the cache is filled once, untimed, and every repetition continues from position D).
/// Tokens are fixed pseudo-random ids, not sampled, so every run does the same work.
/// </summary>
public static class Throughput
{
    /// <summary>Times prompt processing of <paramref name="tokens"/> tokens from position <paramref name="start"/>.</summary>
    public static double PromptTokensPerSecond(Transformer transformer, int tokens, int start = 0)
    {
        var ids = Ids(tokens, transformer.Config.VocabSize);
        var clock = Stopwatch.StartNew();
        transformer.Evaluate(ids, start);
        return tokens / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Times generation of <paramref name="tokens"/> tokens from position <paramref name="start"/>, one forward
    /// pass each.</summary>
    public static double GenerationTokensPerSecond(Transformer transformer, int tokens, int start = 0)
    {
        var ids = Ids(tokens, transformer.Config.VocabSize);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < tokens; i++)
            transformer.Forward(ids[i], start + i);
        return tokens / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Fills positions [0, <paramref name="depth"/>) of the cache (the context a depth test runs after).</summary>
    public static void FillContext(Transformer transformer, int depth)
    {
        if (depth > 0) transformer.Evaluate(DepthIds(depth, transformer.Config.VocabSize), 0);
    }

    /// <summary>The name of a test: pp128, tg64, "tg64 @ d2048".</summary>
    public static string TestName(bool prompt, int tokens, int depth) => (prompt ? "pp" : "tg") + tokens + (depth > 0 ? $" @ d{depth}" : "");

    /// <summary>Positions a test of <paramref name="tokens"/> after <paramref name="depth"/> needs: at least 16, and beyond
    /// the model's trained context when asked (as llama-bench: its speed is what is measured), except with learned
    /// positions, which end there.</summary>
    public static int ContextFor(Model model, int tokens, int depth)
    {
        int context = Math.Max(depth + tokens, 16);
        if (model.Weights.PositionEmbedding is null) return context;
        if (depth + tokens > model.Config.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, $"{depth} + {tokens} tokens exceed this model's {model.Config.ContextLength} learned positions");
        return Math.Min(context, model.Config.ContextLength);
    }

    /// <summary>Times generation of <paramref name="tokens"/> tokens in each of <paramref name="sequences"/> (fresh caches)
    /// advancing together through <paramref name="decoder"/>: aggregate tokens per second over all sequences.</summary>
    public static double BatchGenerationTokensPerSecond(BatchDecoder decoder, Transformer[] sequences, int tokens)
    {
        var ids = Ids(tokens + sequences.Length, decoder.Config.VocabSize);
        var step = new int[sequences.Length];
        var positions = new int[sequences.Length];
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < tokens; i++)
        {
            for (int s = 0; s < sequences.Length; s++) (step[s], positions[s]) = (ids[i + s], i);
            decoder.Step(sequences, step, positions);
        }
        return (double)tokens * sequences.Length / clock.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// Times greedy generation of <paramref name="tokens"/> tokens from BOS, each token chosen by a <see cref="Sampler"/>
    /// from the logits (so the sampler's cost is in the figure), constrained by <paramref name="grammar"/> when given.
    /// A grammar that completes starts again on the same sequence, so a run always makes <paramref name="tokens"/>
    /// tokens. Pass a freshly parsed grammar for a cold run: its cached allowed-token sets start empty, as a new
    /// request's do. <paramref name="stats"/> is the constraint's work (null without a grammar).
    /// </summary>
    public static double SampledGenerationTokensPerSecond(Transformer transformer, Model model, int tokens, Grammar? grammar,
        out GrammarConstraintStats? stats)
    {
        int vocab = model.Config.VocabSize;
        var trie = grammar is null ? null : TokenTrie.For(model.Tokenizer, vocab);
        GrammarConstraint? constraint = grammar is null ? null : new GrammarConstraint(grammar, trie!);
        var sampler = new Sampler(vocab, SamplerOptions.Greedy, constraint);
        long masks = 0, hits = 0, visited = 0;
        int token = model.Tokenizer.BosId >= 0 ? model.Tokenizer.BosId : 0;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < tokens; i++)
        {
            var logits = transformer.Forward(token, i);
            int next = sampler.Sample(logits);
            if (constraint is not null && model.Tokenizer.IsEndOfGeneration(next))
            {
                // The text is complete: begin another one (counting the finished constraint's work).
                masks += constraint.Stats.MaskComputations;
                hits += constraint.Stats.MaskCacheHits;
                visited += constraint.Stats.TrieNodesVisited;
                constraint = new GrammarConstraint(grammar!, trie!);
                sampler = new Sampler(vocab, SamplerOptions.Greedy, constraint);
                next = sampler.Sample(logits);
            }
            token = next;
        }
        double perSecond = tokens / clock.Elapsed.TotalSeconds;
        stats = constraint is null ? null : constraint.Stats with
        {
            MaskComputations = masks + constraint.Stats.MaskComputations,
            MaskCacheHits = hits + constraint.Stats.MaskCacheHits,
            TrieNodesVisited = visited + constraint.Stats.TrieNodesVisited,
        };
        return perSecond;
    }

    /// <summary>
    /// Decode speed with and without a grammar: rows "tgN-greedy" (greedy through the sampler) and "tgN-grammar" (the same,
    /// constrained), repetitions alternating so both see the same machine conditions; each constrained repetition
    /// compiles <paramref name="gbnf"/> afresh, so it pays for every allowed-token set it needs, as one new request would.
    /// </summary>
    public static (ThroughputResult Plain, ThroughputResult Constrained, GrammarConstraintStats Stats) MeasureGrammar(
        Model model, string gbnf, int tokens, int threads, int repetitions)
    {
        if (tokens < 1) throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "need at least one token");
        if (repetitions < 1) throw new ArgumentOutOfRangeException(nameof(repetitions), repetitions, "need at least one repetition");
        Grammar.Parse(gbnf); // errors before any timing
        using var pool = new WorkerPool(threads - 1);
        var transformer = model.CreateTransformer(Math.Min(model.Config.ContextLength, Math.Max(tokens, 16)), pool);
        if (tokens > transformer.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, $"the model's context holds {transformer.ContextLength} tokens");
        TokenTrie.For(model.Tokenizer, model.Config.VocabSize); // built once per model, outside the timings
        SampledGenerationTokensPerSecond(transformer, model, tokens, null, out _); // warm-up
        SampledGenerationTokensPerSecond(transformer, model, tokens, Grammar.Parse(gbnf), out _);
        var plain = new double[repetitions];
        var constrained = new double[repetitions];
        GrammarConstraintStats? stats = null;
        for (int r = 0; r < repetitions; r++)
        {
            plain[r] = SampledGenerationTokensPerSecond(transformer, model, tokens, null, out _);
            var grammar = Grammar.Parse(gbnf);
            constrained[r] = SampledGenerationTokensPerSecond(transformer, model, tokens, grammar, out stats);
        }
        return (new ThroughputResult($"tg{tokens}-greedy", threads, plain), new ThroughputResult($"tg{tokens}-grammar", threads, constrained), stats!);
    }

    /// <summary>Runs a test (after one warm-up run) <paramref name="repetitions"/> times on a fresh pool of <paramref name="threads"/>.</summary>
    public static ThroughputResult Measure(Model model, bool prompt, int tokens, int threads, int repetitions) =>
        Measure(model, prompt, tokens, threads, repetitions, microBatch: null);

    /// <summary>As <see cref="Measure(Model, bool, int, int, int)"/>, with prompts evaluated in chunks of
    /// <paramref name="microBatch"/> tokens (null: <see cref="Transformer.MicroBatch"/>'s default), after
    /// <paramref name="depth"/> cached tokens, in a KV cache of the types <paramref name="cache"/> gives (F16 when null).</summary>
    public static ThroughputResult Measure(Model model, bool prompt, int tokens, int threads, int repetitions, int? microBatch,
        int depth = 0, KvCacheOptions? cache = null)
    {
        if (tokens < 1) throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "need at least one token");
        if (repetitions < 1) throw new ArgumentOutOfRangeException(nameof(repetitions), repetitions, "need at least one repetition");
        ArgumentOutOfRangeException.ThrowIfNegative(depth);
        using var pool = new WorkerPool(threads - 1);
        var transformer = model.CreateTransformer(ContextFor(model, tokens, depth), pool, cache);
        if (microBatch is { } m) transformer.MicroBatch = m;
        if (depth + tokens > transformer.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, $"the model's context holds {transformer.ContextLength} tokens");
        FillContext(transformer, depth);
        Run(transformer, prompt, tokens, depth); // warm-up: JIT and page-in
        var samples = new double[repetitions];
        for (int r = 0; r < repetitions; r++) samples[r] = Run(transformer, prompt, tokens, depth);
        return new ThroughputResult(TestName(prompt, tokens, depth), threads, samples);
    }

    /// <summary>Times <paramref name="batch"/> sequences generating <paramref name="tokens"/> tokens each together
    /// (after one warm-up run), <paramref name="repetitions"/> times: aggregate tokens per second, test "tg{tokens}x{batch}".</summary>
    public static ThroughputResult MeasureBatch(Model model, int batch, int tokens, int threads, int repetitions, KvCacheOptions? cache = null)
    {
        if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch), batch, "need at least one sequence");
        if (tokens < 1) throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "need at least one token");
        if (repetitions < 1) throw new ArgumentOutOfRangeException(nameof(repetitions), repetitions, "need at least one repetition");
        using var pool = new WorkerPool(threads - 1);
        var decoder = new BatchDecoder(model.Config, model.Weights, pool);
        int context = Math.Min(model.Config.ContextLength, Math.Max(tokens, 16));
        if (tokens > context)
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, $"the model's context holds {context} tokens");
        var sequences = Enumerable.Range(0, batch).Select(_ => decoder.CreateSequence(context, cache)).ToArray();
        BatchGenerationTokensPerSecond(decoder, sequences, tokens); // warm-up
        var samples = new double[repetitions];
        for (int r = 0; r < repetitions; r++) samples[r] = BatchGenerationTokensPerSecond(decoder, sequences, tokens);
        return new ThroughputResult($"tg{tokens}x{batch}", threads, samples);
    }

    /// <summary>One timed run, from position <paramref name="start"/>.</summary>
    public static double Run(Transformer transformer, bool prompt, int tokens, int start = 0) =>
        prompt ? PromptTokensPerSecond(transformer, tokens, start) : GenerationTokensPerSecond(transformer, tokens, start);

    /// <summary>The middle value (the mean of the two middle values for an even count).</summary>
    public static double Median(IReadOnlyCollection<double> values)
    {
        var s = values.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>The fixed pseudo-random token ids a depth test runs after (others than the test's own).</summary>
    public static int[] DepthIds(int count, int vocabSize) => Ids(count + 1, vocabSize)[1..];

    /// <summary>The fixed pseudo-random token ids every run uses.</summary>
    public static int[] Ids(int count, int vocabSize)
    {
        var ids = new int[count];
        ulong state = 0x9E3779B97F4A7C15UL;
        for (int i = 0; i < count; i++)
        {
            state = state * 6364136223846793005UL + 1442695040888963407UL;
            ids[i] = (int)((state >> 33) % (ulong)vocabSize);
        }
        return ids;
    }
}
