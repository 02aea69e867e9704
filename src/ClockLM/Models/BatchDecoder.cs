using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// Batched decoding: several independent sequences advance one token each in one pass over the weights. A sequence is
/// a <see cref="Transformer"/> (its own KV cache, position, residual stream and logits) over the same weights; a step
/// runs every cycle for all of them together, so each weight matrix is read once per step instead of once per
/// sequence (<see cref="MatMul"/>), which is what makes serving several users at once cheaper than one after another.
/// </summary>
/// <remarks>
/// A step is one run of the forward pass over a batch whose rows belong to different sequences, so each sequence's
/// result is bit-identical to running <see cref="Transformer.Forward"/> on it alone. A sequence's
/// <see cref="Transformer.Observer"/> receives the step's events (the work and time of all its rows, which the events
/// count) and its <see cref="Transformer.Hook"/> sees its own row.
/// A server's continuous batching plugs in where it decodes its active slots: collect (slot transformer, last token,
/// position) of every slot that is generating, call <see cref="Step"/> once, then sample each slot from its
/// <see cref="Transformer.Logits"/>.
/// </remarks>
public sealed class BatchDecoder
{
    private readonly WorkerPool? _pool;
    private readonly ForwardPass _pass;
    private readonly TokenBatch _batch;

    /// <summary>Creates a decoder for sequences of <paramref name="config"/> and <paramref name="weights"/>, splitting its
    /// products across <paramref name="pool"/>'s threads when one is given.</summary>
    public BatchDecoder(LlamaConfig config, LlamaWeights weights, WorkerPool? pool = null)
    {
        Config = config;
        Weights = weights;
        _pool = pool;
        _pass = new ForwardPass(config, weights);
        _batch = new TokenBatch(config);
    }

    /// <summary>The model every sequence must share.</summary>
    public LlamaConfig Config { get; }

    /// <summary>The weights every sequence must share.</summary>
    public LlamaWeights Weights { get; }

    /// <summary>A new, empty sequence with a KV cache of <paramref name="contextLength"/> positions of the types
    /// <paramref name="cache"/> gives (F16 keys and values when null). Sequences of one decoder may differ in cache types.</summary>
    public Transformer CreateSequence(int contextLength, KvCacheOptions? cache = null) => new(Config, Weights, contextLength, _pool, _pass, cache);

    /// <summary>
    /// Advances every sequence by one token: sequences[i] runs tokens[i] at positions[i] (its cache must already hold
    /// positions 0..positions[i]-1). Afterwards sequences[i].<see cref="Transformer.Logits"/> holds that token's logits.
    /// </summary>
    /// <exception cref="ArgumentException">The spans differ in length, a sequence appears twice, or a sequence does
    /// not share this decoder's weights.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A token or position is outside the vocabulary or the sequence's context.</exception>
    /// <exception cref="InvalidOperationException">A sequence has a token in flight (stepped by <see cref="Transformer.Step"/>).</exception>
    public void Step(ReadOnlySpan<Transformer> sequences, ReadOnlySpan<int> tokens, ReadOnlySpan<int> positions)
    {
        if (tokens.Length != sequences.Length || positions.Length != sequences.Length)
            throw new ArgumentException($"{sequences.Length} sequences need as many tokens and positions, got {tokens.Length} tokens and {positions.Length} positions");
        if (sequences.IsEmpty) return;
        for (int i = 0; i < sequences.Length; i++)
        {
            var s = sequences[i];
            if (!ReferenceEquals(s.Weights, Weights))
                throw new ArgumentException($"sequence {i} runs other weights than this decoder's", nameof(sequences));
            for (int j = 0; j < i; j++)
                if (ReferenceEquals(sequences[j], s))
                    throw new ArgumentException($"sequences {j} and {i} are the same sequence; each may advance once per step", nameof(sequences));
            if (s.TokenInFlight)
                throw new InvalidOperationException($"sequence {i} has a token in flight; finish it with Commit first");
            if ((uint)tokens[i] >= (uint)Config.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(tokens), tokens[i], $"sequence {i}: token id outside the vocabulary (0..{Config.VocabSize - 1})");
            if ((uint)positions[i] >= (uint)s.ContextLength)
                throw new ArgumentOutOfRangeException(nameof(positions), positions[i], $"sequence {i}: position outside its context (0..{s.ContextLength - 1})");
        }
        _batch.Load(sequences, tokens, positions, logitsFrom: 0);
        try
        {
            _pass.Run(_batch, _pool);
        }
        finally
        {
            _batch.Release(); // hold no sequence beyond the step
        }
    }
}
