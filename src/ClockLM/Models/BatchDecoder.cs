using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// Batched decoding: several independent sequences advance one token each in one pass over the weights. A sequence is
/// a <see cref="Transformer"/> (its own KV cache, position, residual stream and logits) over the same weights; a step
/// runs every cycle for all of them together, so each weight matrix is read once per step instead of once per
/// sequence (<see cref="MatMul"/>), which is what makes serving several users at once cheaper than one after another.
/// </summary>
/// <remarks>
/// Each sequence's result is bit-identical to running <see cref="Transformer.Forward"/> on it alone. A sequence with
/// an <see cref="Transformer.Observer"/> or <see cref="Transformer.Hook"/> attached runs token by token inside the
/// step instead, so traces, captures and patches behave exactly as without batching.
/// A server's continuous batching plugs in where it decodes its active slots: collect (slot transformer, last token,
/// position) of every slot that is generating, call <see cref="Step"/> once, then sample each slot from its
/// <see cref="Transformer.Logits"/>.
/// </remarks>
public sealed class BatchDecoder
{
    private readonly WorkerPool? _pool;
    private BatchBuffers? _buffers;
    private Transformer[] _rows = [];
    private int[] _tokens = [], _positions = [];

    /// <summary>Creates a decoder for sequences of <paramref name="config"/> and <paramref name="weights"/>, splitting its
    /// products across <paramref name="pool"/>'s threads when one is given.</summary>
    public BatchDecoder(LlamaConfig config, LlamaWeights weights, WorkerPool? pool = null)
    {
        Config = config;
        Weights = weights;
        _pool = pool;
    }

    /// <summary>The model every sequence must share.</summary>
    public LlamaConfig Config { get; }

    /// <summary>The weights every sequence must share.</summary>
    public LlamaWeights Weights { get; }

    /// <summary>A new, empty sequence with a KV cache of <paramref name="contextLength"/> positions.</summary>
    public Transformer CreateSequence(int contextLength) => new(Config, Weights, contextLength, _pool);

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
        int batched = 0;
        if (_rows.Length < sequences.Length)
        {
            _rows = new Transformer[sequences.Length];
            _tokens = new int[sequences.Length];
            _positions = new int[sequences.Length];
        }
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
            if (s.Observer is not null || s.Hook is not null)
            {
                s.Forward(tokens[i], positions[i]);
                continue;
            }
            (_rows[batched], _tokens[batched], _positions[batched]) = (s, tokens[i], positions[i]);
            batched++;
        }
        if (batched == 0) return;
        _buffers ??= new BatchBuffers(Config, batched);
        Transformer.ForwardRows(_buffers, _rows.AsSpan(0, batched), _tokens.AsSpan(0, batched), _positions.AsSpan(0, batched), logitsFrom: 0, _pool);
        Array.Clear(_rows); // hold no sequence beyond the step
    }
}
