using System.Diagnostics;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Sampling.Grammars;
using ClockLM.Tensors;
using ClockLM.Tokenizers;

namespace ClockLM.Generation;

/// <summary>Settings of one generation.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate after the prompt.</summary>
    public int MaxNewTokens { get; init; } = 128;

    /// <summary>How tokens are chosen.</summary>
    public SamplerOptions Sampler { get; init; } = new();

    /// <summary>A grammar the generated text must follow (GBNF or a converted JSON schema); null for free text.</summary>
    public Grammar? Grammar { get; init; }

    /// <summary>Add BOS before the prompt when the tokenizer asks for it.</summary>
    public bool AddSpecial { get; init; } = true;

    /// <summary>When the context is full, keep BOS and <see cref="KeepTokens"/> prompt tokens, drop half of the rest and
    /// go on (<see cref="Transformer.ShiftContext"/>), as llama.cpp's <c>--context-shift</c>; otherwise stop with
    /// <see cref="StopReason.ContextFull"/>. Default false.</summary>
    public bool ContextShift { get; init; }

    /// <summary>Prompt tokens a context shift keeps after BOS, as llama.cpp's <c>--keep</c>: -1 the whole prompt. Default 0.</summary>
    public int KeepTokens
    {
        get;
        init => field = value >= -1 ? value : throw new ArgumentOutOfRangeException(nameof(KeepTokens), value, "keep -1 (the whole prompt) or a count of tokens");
    }
}

/// <summary>Why generation ended.</summary>
public enum StopReason
{
    /// <summary>The model produced an end-of-generation token (EOS, an end-of-turn token, or BOS for llama2.c checkpoints).</summary>
    EndOfSequence,
    /// <summary>MaxNewTokens were generated.</summary>
    Length,
    /// <summary>The KV cache is full (and the context does not shift).</summary>
    ContextFull,
    /// <summary>The caller cancelled.</summary>
    Cancelled,
}

/// <summary>The outcome of a generation, with timings.</summary>
public sealed record GenerationResult(
    int[] PromptIds,
    int[] GeneratedIds,
    string Text,
    StopReason StopReason,
    TimeSpan PromptTime,
    TimeSpan DecodeTime)
{
    /// <summary>Prompt tokens evaluated per second.</summary>
    public double PromptTokensPerSecond => PromptIds.Length / Math.Max(PromptTime.TotalSeconds, 1e-9);

    /// <summary>The grammar constraint's work, when a grammar was given.</summary>
    public GrammarConstraintStats? GrammarStats { get; init; }

    /// <summary>Generated tokens per second (each needs one forward pass after the first).</summary>
    public double DecodeTokensPerSecond => GeneratedIds.Length / Math.Max(DecodeTime.TotalSeconds, 1e-9);
}

/// <summary>
/// Text generation: tokenize the prompt, evaluate it, then sample and run one token at a time until a stop.
/// The loop, like run.c's generate(): forward → logits → sampler → next token.
/// </summary>
public sealed class Generator
{
    private readonly Model _model;
    private readonly Transformer _transformer;

    /// <summary>A generator over <paramref name="model"/> with a KV cache of <paramref name="contextLength"/> positions
    /// (the model's context length when null) of the types <paramref name="cache"/> gives (F16 when null), using
    /// <paramref name="pool"/>'s threads when given.</summary>
    public Generator(Model model, int? contextLength = null, WorkerPool? pool = null, KvCacheOptions? cache = null)
    {
        _model = model;
        _transformer = model.CreateTransformer(contextLength, pool, cache);
    }

    /// <summary>The processor that runs the forward pass.</summary>
    public Transformer Transformer => _transformer;

    /// <summary>Generates a continuation of <paramref name="prompt"/>. <paramref name="onText"/> receives text as soon as
    /// it is complete UTF-8 (the prompt's own text first, as llama.cpp echoes it, when <paramref name="echoPrompt"/>).</summary>
    public GenerationResult Generate(string prompt, GenerationOptions options, Action<string>? onText = null,
        bool echoPrompt = false, CancellationToken cancellation = default)
    {
        var promptIds = _model.Tokenizer.Encode(prompt, options.AddSpecial).ToArray();
        return Generate(promptIds, options, onText, echoPrompt, cancellation);
    }

    /// <summary>Generates a continuation of the given prompt token ids.</summary>
    public GenerationResult Generate(int[] promptIds, GenerationOptions options, Action<string>? onText = null,
        bool echoPrompt = false, CancellationToken cancellation = default)
    {
        if (promptIds.Length == 0)
            throw new ArgumentException("the prompt is empty (no tokens, and the tokenizer adds no BOS)", nameof(promptIds));
        if (promptIds.Length >= _transformer.ContextLength)
            throw new ArgumentException($"the prompt is {promptIds.Length} tokens but the context holds {_transformer.ContextLength}", nameof(promptIds));
        if (options.MaxNewTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxNewTokens, "max new tokens must be 0 or more");
        if (options.ContextShift && !_transformer.CanShiftContext)
            throw new ArgumentException("this model has learned absolute positions, not RoPE: its context cannot shift", nameof(options));

        var tokenizer = _model.Tokenizer;
        var constraint = options.Grammar is { } grammar
            ? new GrammarConstraint(grammar, TokenTrie.For(tokenizer, _model.Config.VocabSize))
            : null;
        var sampler = new Sampler(_model.Config.VocabSize, options.Sampler, constraint);
        var detokenizer = new StreamingDetokenizer(tokenizer);
        var text = new System.Text.StringBuilder();
        void Emit(string s)
        {
            if (s.Length == 0) return;
            text.Append(s);
            onText?.Invoke(s);
        }

        var history = new List<int>(promptIds);
        foreach (int id in promptIds)
        {
            string piece = detokenizer.Append(id);
            if (echoPrompt) Emit(piece);
        }
        if (!echoPrompt) detokenizer.Flush();

        var clock = Stopwatch.StartNew();
        var logits = _transformer.Evaluate(promptIds, 0);
        var promptTime = clock.Elapsed;
        clock.Restart();

        var generated = new List<int>();
        var stop = StopReason.Length;
        int pos = promptIds.Length;
        while (generated.Count < options.MaxNewTokens)
        {
            if (cancellation.IsCancellationRequested) { stop = StopReason.Cancelled; break; }
            NonFiniteOutputException.ThrowIfBadLogits(logits, pos - 1);
            int next = sampler.Sample(logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(history));
            if (tokenizer.IsEndOfGeneration(next))
            {
                stop = StopReason.EndOfSequence;
                break;
            }
            generated.Add(next);
            history.Add(next);
            Emit(detokenizer.Append(next));
            if (generated.Count == options.MaxNewTokens) break;
            if (pos >= _transformer.ContextLength)
            {
                // llama.cpp's shift: keep the first tokens, drop half of the rest (n_discard = (n_past - n_keep) / 2).
                int keep = Kept(promptIds, options.KeepTokens), discard = options.ContextShift ? (pos - keep) / 2 : 0;
                if (discard < 1) { stop = StopReason.ContextFull; break; }
                _transformer.ShiftContext(keep, discard);
                pos -= discard;
            }
            logits = _transformer.Forward(next, pos++);
        }
        Emit(detokenizer.Flush());
        return new GenerationResult(promptIds, generated.ToArray(), text.ToString(), stop, promptTime, clock.Elapsed)
        {
            GrammarStats = constraint?.Stats,
        };
    }

    /// <summary>Positions a context shift keeps: BOS (when the prompt starts with it) and <paramref name="keep"/> more
    /// prompt tokens (-1: all of them).</summary>
    private int Kept(int[] promptIds, int keep)
    {
        int bos = promptIds[0] == _model.Tokenizer.BosId ? 1 : 0;
        return keep == -1 ? promptIds.Length : Math.Min(promptIds.Length, bos + keep);
    }
}
