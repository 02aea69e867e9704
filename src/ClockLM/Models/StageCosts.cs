using ClockLM.Clock;
using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// What each stage of a cycle reads and computes, from the configuration and the tensor table: the weight bytes of the
/// tensors the stage's products and norms stream, the KV bytes attention reads and the store writes, and the
/// floating-point operations (a multiply-add counts two), per row. Families count what they run: biases, head norms
/// and post-norms when the weights have them, a plain GELU feed-forward network (GPT-2) with two products instead of
/// three, and a sliding-window layer's attention over its window only.
/// </summary>
internal sealed class StageCosts
{
    private readonly LlamaConfig _c;
    private readonly long[] _decodeBytes, _memoryBytes, _executeBytes; // per layer
    private readonly long[] _decodeFlops, _memoryFlops, _executeFlops; // per layer and row, attention's scores aside
    private readonly long _commitBytes, _commitFlops;                  // the commit's, per row with logits

    public StageCosts(LlamaConfig c, LlamaWeights w)
    {
        _c = c;
        long dim = c.Dim, qDim = c.QDim, kvDim = c.KvDim, hidden = c.HiddenDim;
        long norm = c.Normalization == Normalization.RmsNorm ? 4 * dim : 8 * dim; // squares and sums, then scale and weight (LayerNorm: mean and variance too)
        int layers = c.Layers;
        (_decodeBytes, _memoryBytes, _executeBytes) = (new long[layers], new long[layers], new long[layers]);
        (_decodeFlops, _memoryFlops, _executeFlops) = (new long[layers], new long[layers], new long[layers]);
        for (int l = 0; l < layers; l++)
        {
            var lw = w.Layers[l];
            _decodeBytes[l] = lw.Wq.ByteCount + lw.Wk.ByteCount + lw.Wv.ByteCount
                + Floats(lw.AttnNorm, lw.AttnNormBias, lw.BiasQ, lw.BiasK, lw.BiasV, lw.QNorm, lw.KNorm);
            _decodeFlops[l] = norm + 2 * dim * (qDim + 2 * kvDim)
                + Length(lw.BiasQ) + Length(lw.BiasK) + Length(lw.BiasV)
                + (lw.QNorm is null ? 0 : 4 * qDim) + (lw.KNorm is null ? 0 : 4 * kvDim)
                + (c.Rope == RopeStyle.None ? 0 : 3 * (qDim + kvDim)); // six per rotated pair
            _memoryBytes[l] = lw.Wo.ByteCount + Floats(lw.BiasO, lw.PostAttnNorm);
            _memoryFlops[l] = 2 * qDim * dim + Length(lw.BiasO) + (lw.PostAttnNorm is null ? 0 : 4 * dim);
            _executeBytes[l] = lw.W1.ByteCount + lw.W2.ByteCount + lw.W3.ByteCount
                + Floats(lw.FfnNorm, lw.FfnNormBias, lw.BiasUp, lw.BiasDown, lw.PostFfnNorm);
            long activation = c.FeedForward switch
            {
                FeedForward.SwiGlu => 5 * hidden,     // g / (1 + e^-g) * u
                FeedForward.GeluGated => 10 * hidden, // the tanh form, times u
                _ => 9 * hidden,                      // the tanh form
            };
            long products = c.FeedForward == FeedForward.Gelu ? 4 * dim * hidden : 6 * dim * hidden;
            _executeFlops[l] = dim + norm + products + activation + Length(lw.BiasUp) + Length(lw.BiasDown)
                + (lw.PostFfnNorm is null ? 0 : 4 * dim);
        }
        _commitBytes = w.Output.ByteCount + Floats(w.FinalNorm, w.FinalNormBias);
        _commitFlops = norm + 2L * c.VocabSize * dim + (c.FinalSoftcap > 0 ? 3L * c.VocabSize : 0);
    }

    private static long Length(float[]? v) => v?.Length ?? 0;

    private static long Floats(params float[]?[] vectors) => 4 * vectors.Sum(Length);

    /// <summary>The event of <paramref name="stage"/> of <paramref name="layer"/>, run for every row of <paramref name="b"/>
    /// from timestamp <paramref name="start"/> for <paramref name="elapsed"/> ticks; <paramref name="attention"/> is
    /// the batch's <see cref="Attention"/> for the layer's kind (full or sliding).</summary>
    public StageEvent Event(TokenBatch b, int layer, Stage stage, long start, long elapsed, in AttentionWork attention)
    {
        long n = b.Count;
        (long weightBytes, long kvRead, long kvWritten, long flops) = stage switch
        {
            Stage.Fetch => (b.FetchedBytes[layer], 0L, 0L, 0L),
            Stage.Decode => (_decodeBytes[layer], 0L, 0L, n * _decodeFlops[layer]),
            Stage.Memory => (_memoryBytes[layer], attention.Read, attention.Written, n * _memoryFlops[layer] + attention.Flops),
            Stage.Execute => (_executeBytes[layer], 0L, 0L, n * _executeFlops[layer]),
            _ => (0L, 0L, 0L, n * _c.Dim), // write-back: x = m + f
        };
        return new StageEvent(b.Positions[0], b.Count, layer, stage, start, elapsed, weightBytes, kvRead, kvWritten, flops);
    }

    /// <summary>What attention over the KV cache costs the rows of <paramref name="b"/> in any full-attention layer
    /// (<paramref name="sliding"/> false) or any sliding-window layer (true): the same for every layer of the kind, so
    /// counted once a batch.</summary>
    public AttentionWork Attention(TokenBatch b, bool sliding)
    {
        long read = 0, written = 0, flops = 0, headSize = _c.HeadSize;
        for (int i = 0; i < b.Count; i++)
        {
            var cache = b.Sequences[i].Cache; // rows in its own types
            long positions = b.Positions[i] + 1, seen = sliding ? Math.Min(positions, _c.SlidingWindow) : positions;
            written += cache.KeyRowBytes + cache.ValueRowBytes;
            // Keys of the positions seen; values of every position (the unseen ones weigh 0).
            read += seen * cache.KeyRowBytes + positions * cache.ValueRowBytes;
            // Per head: scores (2 per element and position seen, then the scale), soft-cap, softmax (max, exponential,
            // sum, division), weighted sum (2 per element and position).
            flops += _c.Heads * (seen * (2 * headSize + 1 + (_c.AttentionSoftcap > 0 ? 3 : 0)) + 4 * positions + 2 * headSize * positions);
        }
        return new AttentionWork(read, written, flops);
    }

    /// <summary>The event of a batch that has committed, <paramref name="withLogits"/> of its rows with logits, its
    /// times from the batch's seams.</summary>
    public TokenEvent Commit(TokenBatch b, int withLogits)
    {
        long start = b.Seams[0], commitStart = b.Seams[^2], end = b.Seams[^1];
        return new(b.Positions[0], b.Tokens[0], b.Count, start, end - start, b.EmbeddingTicks, end - commitStart,
            withLogits > 0 ? _commitBytes : 0, withLogits * _commitFlops);
    }
}

/// <summary>KV-cache bytes attention reads and the store writes, and attention's floating-point operations, for the
/// rows of one batch in one layer.</summary>
internal readonly record struct AttentionWork(long Read, long Written, long Flops);
