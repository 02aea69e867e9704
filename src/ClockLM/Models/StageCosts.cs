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
    private readonly long[] _weightBytes; // per (layer, stage): what its products and norms stream (fetch's: per batch)
    private readonly long[] _flops;       // per (layer, stage) and row, attention over the cache aside
    private readonly long _commitBytes, _commitFlops; // the commit's, per row with logits

    public StageCosts(LlamaConfig c, LlamaWeights w)
    {
        _c = c;
        long dim = c.Dim, qDim = c.QDim, kvDim = c.KvDim, hidden = c.HiddenDim;
        long norm = c.Normalization == Normalization.RmsNorm ? 4 * dim : 8 * dim; // squares and sums, then scale and weight (LayerNorm: mean and variance too)
        int layers = c.Layers;
        (_weightBytes, _flops) = (new long[layers * StageNames.Count], new long[layers * StageNames.Count]);
        for (int l = 0; l < layers; l++)
        {
            var lw = w.Layers[l];
            int decode = At(l, Stage.Decode), memory = At(l, Stage.Memory), execute = At(l, Stage.Execute);
            _weightBytes[decode] = lw.Wq.ByteCount + lw.Wk.ByteCount + lw.Wv.ByteCount
                + Floats(lw.AttnNorm, lw.AttnNormBias, lw.BiasQ, lw.BiasK, lw.BiasV, lw.QNorm, lw.KNorm);
            _flops[decode] = norm + 2 * dim * (qDim + 2 * kvDim)
                + Length(lw.BiasQ) + Length(lw.BiasK) + Length(lw.BiasV)
                + (lw.QNorm is null ? 0 : 4 * qDim) + (lw.KNorm is null ? 0 : 4 * kvDim)
                + (c.Rope == RopeStyle.None ? 0 : 3 * (qDim + kvDim)); // six per rotated pair
            _weightBytes[memory] = lw.Wo.ByteCount + Floats(lw.BiasO, lw.PostAttnNorm);
            _flops[memory] = 2 * qDim * dim + Length(lw.BiasO) + (lw.PostAttnNorm is null ? 0 : 4 * dim);
            _weightBytes[execute] = lw.W1.ByteCount + lw.W2.ByteCount + lw.W3.ByteCount
                + Floats(lw.FfnNorm, lw.FfnNormBias, lw.BiasUp, lw.BiasDown, lw.PostFfnNorm);
            long activation = c.FeedForward switch
            {
                FeedForward.SwiGlu => 5 * hidden,     // g / (1 + e^-g) * u
                FeedForward.GeluGated => 10 * hidden, // the tanh form, times u
                _ => 9 * hidden,                      // the tanh form
            };
            long products = c.FeedForward == FeedForward.Gelu ? 4 * dim * hidden : 6 * dim * hidden;
            _flops[execute] = dim + norm + products + activation + Length(lw.BiasUp) + Length(lw.BiasDown)
                + (lw.PostFfnNorm is null ? 0 : 4 * dim);
            _flops[At(l, Stage.WriteBack)] = dim; // x = m + f
        }
        _commitBytes = w.Output.ByteCount + Floats(w.FinalNorm, w.FinalNormBias);
        _commitFlops = norm + 2L * c.VocabSize * dim + (c.FinalSoftcap > 0 ? 3L * c.VocabSize : 0);
    }

    private static int At(int layer, Stage stage) => layer * StageNames.Count + (int)stage;

    private static long Length(float[]? v) => v?.Length ?? 0;

    private static long Floats(params float[]?[] vectors) => 4 * vectors.Sum(Length);

    /// <summary>True when some layers attend over a sliding window (their attention costs differ).</summary>
    public bool HasSlidingLayers => _c.SlidingWindow > 0;

    /// <summary>True when <paramref name="layer"/> attends over a sliding window.</summary>
    public bool IsSliding(int layer) => _c.IsSliding(layer);

    /// <summary>The event of <paramref name="stage"/> of <paramref name="layer"/>, run for <paramref name="rows"/> rows
    /// from <paramref name="position"/> on, from timestamp <paramref name="start"/> for <paramref name="elapsed"/> ticks;
    /// <paramref name="fetchedBytes"/> is what the layer's fetch asked for, <paramref name="attention"/> the batch's
    /// <see cref="Attention"/> for the layer's kind (full or sliding).</summary>
    public StageEvent Event(int position, int rows, int layer, Stage stage, long start, long elapsed, long fetchedBytes, in AttentionWork attention)
    {
        int k = At(layer, stage);
        long weightBytes = stage == Stage.Fetch ? fetchedBytes : _weightBytes[k], flops = rows * _flops[k];
        if (stage != Stage.Memory)
            return new StageEvent(position, rows, layer, stage, start, elapsed, weightBytes, 0, 0, flops);
        return new StageEvent(position, rows, layer, stage, start, elapsed, weightBytes, attention.Read, attention.Written,
            flops + attention.Flops);
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
