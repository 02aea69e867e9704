using ClockLM.Clock;
using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// One sequence run through the model the way a processor runs instructions: its KV cache, its position, its residual
/// stream and its logits, and the calls that advance it. Llama and the families that differ from it by options of
/// <see cref="LlamaConfig"/> and <see cref="LlamaWeights"/> (Mistral, Qwen 2/3, Phi-3, Gemma 2/3, GPT-2) all run
/// through the one forward pass (<see cref="ForwardPass"/>): a token's embedding is fetched into the residual stream
/// (instruction fetch), every layer runs as one clock cycle of five stages (<see cref="Stage"/>: fetch, decode, memory,
/// execute, write-back), and the output head commits the logits. <see cref="Forward"/> runs one token,
/// <see cref="Evaluate(ReadOnlySpan{int}, int)"/> a prompt in chunks of <see cref="MicroBatch"/> tokens that pass
/// through the cycles together, and <see cref="BatchDecoder"/> one token of each of several sequences; each row's
/// result is the same bits whichever way it ran. The clock can be stepped one stage at a time
/// (<see cref="BeginToken"/>, <see cref="Step"/>, <see cref="Commit"/>); an <see cref="Observer"/> receives an event per
/// stage and a <see cref="Hook"/> reads or replaces activations, on the same path and kernels as without them.
/// </summary>
public sealed class Transformer
{
    private readonly ForwardPass _pass;
    private readonly WorkerPool? _pool;
    private TokenBatch? _batch;        // this sequence's own rows: a token, a prompt chunk, a stepped token
    private Transformer[] _selfRows = [];
    private int[] _chunkPositions = [];
    private readonly float[] _x;       // the residual stream after the last token that retired (dim)
    private readonly float[] _logits;  // logits of the last token that computed them (vocab)
    private int _pos, _microBatch = 128;
    private bool _inFlight;            // between BeginToken and Commit
    private ResidualSteering? _steering;
    private LoraAdapters? _lora;

    /// <summary>Creates a processor for <paramref name="weights"/> with a KV cache of <paramref name="contextLength"/> positions
    /// of the types <paramref name="cache"/> gives (F16 keys and values when null). Matrix products are split across
    /// <paramref name="pool"/>'s threads when one is given.</summary>
    public Transformer(LlamaConfig config, LlamaWeights weights, int contextLength, WorkerPool? pool = null, KvCacheOptions? cache = null)
        : this(config, weights, contextLength, pool, new ForwardPass(config, weights), cache)
    {
    }

    /// <summary>A sequence that runs <paramref name="pass"/> (shared by the sequences of a <see cref="BatchDecoder"/>).</summary>
    internal Transformer(LlamaConfig config, LlamaWeights weights, int contextLength, WorkerPool? pool, ForwardPass pass, KvCacheOptions? cache)
    {
        Config = config;
        Weights = weights;
        _pool = pool;
        _pass = pass;
        Cache = new KvCache(config, contextLength, cache);
        _x = new float[config.Dim];
        _logits = new float[config.VocabSize];
    }

    public LlamaConfig Config { get; }
    public LlamaWeights Weights { get; }
    public KvCache Cache { get; }

    /// <summary>Positions the KV cache holds.</summary>
    public int ContextLength => Cache.ContextLength;

    /// <summary>The residual stream: after the last token that ran, or wherever a stepped token stands.</summary>
    public ReadOnlySpan<float> Residual => _inFlight ? TokenBatch.Row(_batch!.X, 0, Config.Dim) : _x;

    /// <summary>The logits of the last token that computed them (vocab): <see cref="Forward"/>,
    /// <see cref="Evaluate(ReadOnlySpan{int}, int)"/>, <see cref="Commit"/> or a <see cref="BatchDecoder"/> step.
    /// Overwritten by the next one.</summary>
    public ReadOnlySpan<float> Logits => _logits;

    /// <summary>Receives an event per stage and per token (or prompt chunk); null (the default) costs nothing measurable.</summary>
    public ICycleObserver? Observer { get; set; }

    /// <summary>Called at every <see cref="ActivationPoint"/> of every cycle, for every token of this sequence; may
    /// replace the activation.</summary>
    public ActivationHook? Hook { get; set; }

    /// <summary>Directions added to this sequence's residual stream after chosen cycles (control vectors, feature
    /// steering), in the write-back stage; none when null. Every row of this sequence is steered, in whatever batch it
    /// runs.</summary>
    /// <exception cref="ArgumentException">The steering is for a model of another depth or width.</exception>
    public ResidualSteering? Steering
    {
        get => _steering;
        set
        {
            if (value is not null && (value.Layers != Config.Layers || value.Dim != Config.Dim))
                throw new ArgumentException($"the steering is for {value.Layers} layers of width {value.Dim}; this model has {Config.Layers} of width {Config.Dim}", nameof(value));
            _steering = value;
        }
    }

    /// <summary>The LoRA adapters this sequence runs with, in place of the model's (<see cref="LlamaWeights.Lora"/>):
    /// a server request's own scales. Null (the default): the model's. Adapters that apply nothing (all at scale 0) run
    /// this sequence without any, whatever the model's. Every row of this sequence gets them, in whatever batch it runs,
    /// so sequences with different adapters may share a batched step.</summary>
    /// <exception cref="ArgumentException">The adapters were resolved against other weights.</exception>
    public LoraAdapters? Lora
    {
        get => _lora;
        set
        {
            if (value is not null && !ReferenceEquals(value.Weights, Weights))
                throw new ArgumentException("the LoRA adapters were resolved against another model's weights", nameof(value));
            _lora = value;
        }
    }

    /// <summary>Position of the token in flight (or the last one run).</summary>
    public int Position => _pos;

    /// <summary>The cycle (layer) that runs next; <see cref="LlamaConfig.Layers"/> when every cycle of the token has run.</summary>
    public int Layer => _inFlight ? _batch!.Layer : Config.Layers;

    /// <summary>The stage of <see cref="Layer"/> that runs next.</summary>
    public Stage NextStage => _inFlight ? _batch!.NextStage : Stage.Fetch;

    /// <summary>True between <see cref="BeginToken"/> and <see cref="Commit"/>.</summary>
    public bool TokenInFlight => _inFlight;

    /// <summary>
    /// Most prompt tokens <see cref="Evaluate(ReadOnlySpan{int}, int)"/> runs through the cycles together (llama.cpp's
    /// n_ubatch). Each chunk reads the weights once for all its tokens, which makes long prompts compute-bound instead
    /// of bound by memory bandwidth; the logits are bit-identical to evaluating token by token. 1 evaluates token by
    /// token. Default 128 (larger chunks amortise the per-product weight re-layout over more tokens).
    /// </summary>
    public int MicroBatch
    {
        get => _microBatch;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1, nameof(MicroBatch));
            _microBatch = value;
        }
    }

    /// <summary>The pool this processor splits products across, if any.</summary>
    internal WorkerPool? Pool => _pool;

    /// <summary>The forward pass this sequence runs.</summary>
    internal ForwardPass Pass => _pass;

    /// <summary>Where the forward pass writes this sequence's logits.</summary>
    internal float[] LogitsBuffer => _logits;

    /// <summary>Runs token <paramref name="token"/> at position <paramref name="pos"/> and returns the logits (vocab).
    /// The span is overwritten by the next call.</summary>
    public ReadOnlySpan<float> Forward(int token, int pos)
    {
        Evaluate([token], pos);
        return _logits;
    }

    /// <summary>Evaluates a prompt: tokens at positions startPos, startPos+1, … in chunks of up to
    /// <see cref="MicroBatch"/> tokens, and returns the logits of the last one.</summary>
    public ReadOnlySpan<float> Evaluate(ReadOnlySpan<int> tokens, int startPos) => Evaluate(tokens, startPos, []);

    /// <summary>
    /// Evaluates tokens at positions startPos, startPos+1, … as <see cref="Evaluate(ReadOnlySpan{int}, int)"/> does, and
    /// writes every token's logits into <paramref name="logits"/> (tokens, vocab): what scoring a text (perplexity) and
    /// verifying drafted tokens need. Returns the last token's logits.
    /// </summary>
    public ReadOnlySpan<float> Evaluate(ReadOnlySpan<int> tokens, int startPos, Span<float> logits)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to evaluate", nameof(tokens));
        bool all = !logits.IsEmpty;
        int vocab = Config.VocabSize;
        if (all && logits.Length < (long)tokens.Length * vocab)
            throw new ArgumentException($"logits of {tokens.Length} tokens need {(long)tokens.Length * vocab} floats, got {logits.Length}", nameof(logits));
        if (_inFlight) throw new InvalidOperationException("a stepped token is in flight; finish it with Commit first");
        for (int i = 0; i < tokens.Length; i++) CheckTokenAndPosition(tokens[i], startPos + i);
        int chunk = Math.Min(_microBatch, tokens.Length);
        if (_selfRows.Length < chunk)
        {
            _selfRows = new Transformer[chunk];
            Array.Fill(_selfRows, this);
            _chunkPositions = new int[chunk];
        }
        var batch = _batch ??= new TokenBatch(Config);
        for (int start = 0; start < tokens.Length; start += chunk)
        {
            int n = Math.Min(chunk, tokens.Length - start);
            for (int i = 0; i < n; i++) _chunkPositions[i] = startPos + start + i;
            bool last = start + n == tokens.Length;
            batch.Load(_selfRows.AsSpan(0, n), tokens.Slice(start, n), _chunkPositions.AsSpan(0, n), logitsFrom: all ? 0 : last ? n - 1 : n);
            _pass.Run(batch, _pool);
            if (all)
                for (int i = 0; i < n; i++) _pass.RowLogits(batch, i).CopyTo(logits.Slice((start + i) * vocab, vocab));
        }
        batch.Release();
        return _logits;
    }

    /// <summary>Evaluates <paramref name="tokens"/> from <paramref name="startPos"/> with <paramref name="hook"/> attached
    /// (for this call only, replacing <see cref="Hook"/>) and returns the logits of the last token.</summary>
    public ReadOnlySpan<float> Run(ReadOnlySpan<int> tokens, ActivationHook hook, int startPos = 0)
    {
        var previous = Hook;
        Hook = hook;
        try
        {
            return Evaluate(tokens, startPos);
        }
        finally
        {
            Hook = previous;
        }
    }

    /// <summary>True when the model's positions are RoPE rotations, which <see cref="ShiftContext"/> can redo (not learned
    /// absolute positions, as GPT-2's).</summary>
    public bool CanShiftContext => Config.Rope != RopeStyle.None;

    /// <summary>
    /// Context shift: keeps the cached positions [0, <paramref name="keep"/>), drops the next <paramref name="discard"/>,
    /// and moves the later ones down, their keys re-rotated for their new positions in whatever type the cache stores
    /// (<see cref="KvCache"/>; see llama.cpp's context shift). The sequence then continues at
    /// <see cref="Position"/> + 1, which has moved down by <paramref name="discard"/> as well.
    /// </summary>
    /// <exception cref="NotSupportedException">The model has learned absolute positions (GPT-2), not RoPE.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The positions to drop are not all in the cache.</exception>
    /// <exception cref="InvalidOperationException">A stepped token is in flight.</exception>
    public void ShiftContext(int keep, int discard)
    {
        if (_inFlight) throw new InvalidOperationException("a stepped token is in flight; finish it with Commit first");
        if (!CanShiftContext)
            throw new NotSupportedException("this model has learned absolute position embeddings, not RoPE: its cached keys cannot be moved to other positions");
        if (keep < 0 || discard < 1 || keep + discard > Cache.Length)
            throw new ArgumentOutOfRangeException(nameof(discard), discard, $"dropping {discard} positions after {keep} needs them in the cache, which holds {Cache.Length}");
        ContextShift.Apply(Cache, _pass, Config, keep, discard);
        _pos = Cache.Length - 1;
    }

    /// <summary>Instruction fetch: puts token <paramref name="token"/>'s embedding at position <paramref name="pos"/> into the
    /// residual stream. Then call <see cref="Step"/> until <see cref="Layer"/> reaches the layer count, then <see cref="Commit"/>.</summary>
    public void BeginToken(int token, int pos)
    {
        CheckTokenAndPosition(token, pos);
        if (_inFlight) throw new InvalidOperationException("a stepped token is in flight; finish it with Commit first");
        if (_selfRows.Length == 0) _selfRows = [this];
        var batch = _batch ??= new TokenBatch(Config);
        batch.Load(_selfRows.AsSpan(0, 1), [token], [pos], logitsFrom: 0);
        (_pos, _inFlight) = (pos, true);
        _pass.Begin(batch);
    }

    /// <summary>Runs the next stage of the token in flight and advances the clock; the <see cref="Observer"/> gets the
    /// stage's event at once, timed from this call (the time between steps belongs to no stage).</summary>
    public void Step()
    {
        if (!_inFlight || _batch!.Layer >= Config.Layers)
            throw new InvalidOperationException(_inFlight ? "every cycle of this token has run; call Commit" : "no token in flight; call BeginToken");
        _pass.Resume(_batch);
        _pass.Step(_batch, _pool);
        _pass.Report(_batch, committed: false);
    }

    /// <summary>Commit: the final norm and output head turn the residual stream into logits (skipped when
    /// <paramref name="computeLogits"/> is false, as for prompt tokens before the last), and the token is retired.</summary>
    public ReadOnlySpan<float> Commit(bool computeLogits = true)
    {
        if (!_inFlight || _batch!.Layer < Config.Layers)
            throw new InvalidOperationException(_inFlight ? $"cycle {_batch!.Layer} has not run yet" : "no token in flight; call BeginToken");
        _batch.LogitsFrom = computeLogits ? 0 : 1;
        _pass.Resume(_batch);
        _pass.Commit(_batch, _pool);
        _batch.Release();
        return _logits;
    }

    /// <summary>The forward pass has run this sequence's last row of a batch, at <paramref name="pos"/>, leaving
    /// <paramref name="residual"/>.</summary>
    internal void Retire(int pos, ReadOnlySpan<float> residual)
    {
        residual.CopyTo(_x);
        (_pos, _inFlight) = (pos, false);
        Cache.Length = pos + 1;
    }

    internal void CheckTokenAndPosition(int token, int pos)
    {
        if ((uint)token >= (uint)Config.VocabSize)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary (0..{Config.VocabSize - 1})");
        if ((uint)pos >= (uint)ContextLength)
            throw new ArgumentOutOfRangeException(nameof(pos), pos, $"position outside the context (0..{ContextLength - 1})");
    }

    /// <summary>out = weight * (x - mean) / sqrt(var + eps) + bias (no bias when it is empty).</summary>
    public static void LayerNorm(Span<float> output, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps) =>
        Ops.LayerNorm(output, x, weight, bias, eps);

    /// <summary>out = weight * x / sqrt(mean(x²) + eps), the squares summed in double as llama.cpp does.</summary>
    public static void RmsNorm(Span<float> output, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps) =>
        Ops.RmsNorm(output, x, weight, eps);

    /// <summary>In-place softmax, subtracting the maximum for stability.</summary>
    public static void Softmax(Span<float> x) => AttentionKernels.Softmax(x);
}
