using System.Runtime.CompilerServices;
using ClockLM.Clock;
using ClockLM.Tensors;

namespace ClockLM.Models;

// Several tokens through the cycles together: the tokens of a prompt chunk (one sequence, consecutive positions), or
// one token of each of several sequences (BatchDecoder). Every cycle runs for all rows at once, so each weight matrix
// is read once per cycle for all of them (MatMul instead of MatVec). Per row the arithmetic is exactly that of the
// token-by-token path (the same kernels' float operations, the same norms, RoPE and attention), so logits are
// bit-identical to it. Observers and hooks see one token at a time; with either attached the token-by-token path runs.
public sealed partial class Transformer
{
    private int _microBatch = 128;
    private BatchBuffers? _chunk;
    private Transformer[]? _selfRows;
    private int[]? _chunkPositions;

    /// <summary>
    /// Most prompt tokens <see cref="Evaluate"/> runs through the cycles together (llama.cpp's n_ubatch). Each chunk
    /// reads the weights once for all its tokens, which makes long prompts compute-bound instead of bound by memory
    /// bandwidth; the logits are bit-identical to evaluating token by token. 1 evaluates token by token. Chunks are
    /// used only while neither <see cref="Observer"/> nor <see cref="Hook"/> is attached. Default 128 (larger chunks amortise the per-product weight re-layout over more tokens).
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

    /// <summary>The logits of the last token that computed them (vocab): <see cref="Forward"/>, <see cref="Evaluate"/>,
    /// <see cref="Commit"/> or a <see cref="BatchDecoder"/> step. Overwritten by the next one.</summary>
    public ReadOnlySpan<float> Logits => _logits;

    /// <summary>The pool this processor splits products across, if any.</summary>
    internal WorkerPool? Pool => _pool;

    private bool UsesChunks(int tokens) => tokens > 1 && _microBatch > 1 && Observer is null && Hook is null && !_inFlight;

    /// <summary>Evaluate in chunks of up to <see cref="MicroBatch"/> tokens; logits of the last token only.</summary>
    private ReadOnlySpan<float> EvaluateChunked(ReadOnlySpan<int> tokens, int startPos)
    {
        for (int i = 0; i < tokens.Length; i++) CheckTokenAndPosition(tokens[i], startPos + i);
        int chunk = Math.Min(_microBatch, tokens.Length);
        _chunk ??= new BatchBuffers(Config, chunk);
        _chunk.Reserve(chunk);
        if (_selfRows is null || _selfRows.Length < chunk) _selfRows = new Transformer[chunk];
        Array.Fill(_selfRows, this);
        if (_chunkPositions is null || _chunkPositions.Length < chunk) _chunkPositions = new int[chunk];
        int[] positionArray = _chunkPositions;
        for (int start = 0; start < tokens.Length; start += chunk)
        {
            int n = Math.Min(chunk, tokens.Length - start);
            for (int i = 0; i < n; i++) positionArray[i] = startPos + start + i;
            bool last = start + n == tokens.Length;
            ForwardRows(_chunk, _selfRows.AsSpan(0, n), tokens.Slice(start, n), positionArray.AsSpan(0, n),
                logitsFrom: last ? n - 1 : n, _pool);
        }
        return _logits;
    }

    private void CheckTokenAndPosition(int token, int pos)
    {
        if ((uint)token >= (uint)Config.VocabSize)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary (0..{Config.VocabSize - 1})");
        if ((uint)pos >= (uint)ContextLength)
            throw new ArgumentOutOfRangeException(nameof(pos), pos, $"position outside the context (0..{ContextLength - 1})");
    }

    /// <summary>
    /// Runs row i (token tokens[i] at position positions[i] of the sequence whose state is rows[i]: its KV cache,
    /// attention buffers, residual stream and logits) through every cycle, all rows together. Rows of one sequence
    /// must come in position order. Rows from <paramref name="logitsFrom"/> on get logits, in their sequence's
    /// <see cref="Logits"/>; every sequence is left as if its last row had run through <see cref="Forward"/>.
    /// Compiled fully optimized at once: it runs once per prompt chunk or batched step, too rarely for tiered
    /// compilation to promote it from its first, unoptimized code within a short prompt.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ForwardRows(BatchBuffers b, ReadOnlySpan<Transformer> rows, ReadOnlySpan<int> tokens,
        ReadOnlySpan<int> positions, int logitsFrom, WorkerPool? pool)
    {
        var m = rows[0]; // every row shares its config and weights
        var c = m.Config;
        int n = rows.Length, dim = c.Dim, qDim = c.QDim, kvDim = c.KvDim, hidden = c.HiddenDim;
        b.Reserve(n);
        rows.CopyTo(b.Sequences);
        positions.CopyTo(b.Positions);

        // Instruction fetch: every row's embedding into its residual stream.
        for (int i = 0; i < n; i++)
        {
            Span<float> x = b.X.AsSpan(i * dim, dim);
            m.Weights.TokenEmbedding.DequantizeRow(tokens[i], x);
            if (c.EmbeddingScale != 1f) Scale(x, c.EmbeddingScale);
            if (m.Weights.PositionEmbedding is { } embeddings)
            {
                Span<float> p = b.XB.AsSpan(i * dim, dim);
                embeddings.DequantizeRow(positions[i], p);
                Add(x, p);
            }
        }

        for (int layer = 0; layer < c.Layers; layer++)
        {
            LlamaLayerWeights w = m.Weights.Layers[layer];
            float[] theta = c.IsSliding(layer) ? m._ropeFrequenciesSliding : m._ropeFrequencies;

            // Decode: norm, q/k/v projections for all rows, then per row biases, head norms and RoPE.
            for (int i = 0; i < n; i++) m.Normalize(b.XB.AsSpan(i * dim, dim), b.X.AsSpan(i * dim, dim), w.AttnNorm, w.AttnNormBias);
            var normed = b.Normed(n);
            Tensors.MatMul.Multiply(w.Wq, normed, b.Q, pool);
            Tensors.MatMul.Multiply(w.Wk, normed, b.K, pool);
            Tensors.MatMul.Multiply(w.Wv, normed, b.V, pool);
            for (int i = 0; i < n; i++)
            {
                Span<float> q = b.Q.AsSpan(i * qDim, qDim), k = b.K.AsSpan(i * kvDim, kvDim), v = b.V.AsSpan(i * kvDim, kvDim);
                if (w.BiasQ is not null) Add(q, w.BiasQ);
                if (w.BiasK is not null) Add(k, w.BiasK);
                if (w.BiasV is not null) Add(v, w.BiasV);
                if (w.QNorm is not null) m.RmsNormHeads(q, w.QNorm);
                if (w.KNorm is not null) m.RmsNormHeads(k, w.KNorm);
                m.Rope(q, positions[i], theta);
                m.Rope(k, positions[i], theta);
            }

            // Memory: every row's key and value into its sequence's cache, before any row attends, so a prompt
            // token sees the earlier tokens of its chunk (and never a later one: attention stops at its position).
            for (int i = 0; i < n; i++)
            {
                b.K.AsSpan(i * kvDim, kvDim).CopyTo(rows[i].Cache.Key(layer, positions[i]));
                b.V.AsSpan(i * kvDim, kvDim).CopyTo(rows[i].Cache.Value(layer, positions[i]));
            }

            // Execute: attention per row and head over the row's own cache (the (row, head) pairs split across the
            // pool), then the output projection and feed-forward for all rows.
            var attention = new ChunkAttentionJob { Rows = b.Sequences, Positions = b.Positions, Q = b.Q, Output = b.AttnOut, Layer = layer, Heads = c.Heads };
            if (pool is null || n * c.Heads < 2) attention.Execute(0, n * c.Heads);
            else pool.Run(attention, n * c.Heads);
            for (int i = 0; i < n; i++) b.Q.AsSpan(i * qDim, qDim).CopyTo(rows[i]._q);
            Multiply(w.Wo, b.AttnOut, b.XB2, n, pool);
            for (int i = 0; i < n; i++)
            {
                Span<float> o = b.XB2.AsSpan(i * dim, dim), x = b.X.AsSpan(i * dim, dim);
                if (w.BiasO is not null) Add(o, w.BiasO);
                if (w.PostAttnNorm is not null) RmsNorm(o, o, w.PostAttnNorm, c.RmsEpsilon);
                Add(x, o);
                m.Normalize(b.XB.AsSpan(i * dim, dim), x, w.FfnNorm, w.FfnNormBias);
            }
            Span<float> hb = b.HB.AsSpan(0, n * hidden);
            if (c.FeedForward == FeedForward.Gelu)
            {
                Multiply(w.W3, b.XB, b.HB, n, pool);
                if (w.BiasUp is not null)
                    for (int i = 0; i < n; i++) Add(hb.Slice(i * hidden, hidden), w.BiasUp);
            }
            else
            {
                var ffnInput = b.Normed(n);
                Tensors.MatMul.Multiply(w.W1, ffnInput, b.HB, pool);
                Tensors.MatMul.Multiply(w.W3, ffnInput, b.HB2, pool);
            }
            // The activation, row by row (element-wise, so split across the pool it is the same arithmetic).
            var activation = new ActivationJob { Kind = c.FeedForward, Gate = b.HB, Up = b.HB2, Width = hidden };
            if (pool is null || n < 2) activation.Execute(0, n);
            else pool.Run(activation, n);
            Multiply(w.W2, b.HB, b.XB, n, pool);

            // Write-back: the feed-forward output into every residual stream.
            for (int i = 0; i < n; i++)
            {
                Span<float> f = b.XB.AsSpan(i * dim, dim);
                if (w.BiasDown is not null) Add(f, w.BiasDown);
                if (w.PostFfnNorm is not null) RmsNorm(f, f, w.PostFfnNorm, c.RmsEpsilon);
                Add(b.X.AsSpan(i * dim, dim), f);
            }
        }

        // Commit: final norm and output head for the rows that want logits.
        int withLogits = n - logitsFrom;
        for (int i = logitsFrom; i < n; i++)
            m.Normalize(b.XB.AsSpan(i * dim, dim), b.X.AsSpan(i * dim, dim), m.Weights.FinalNorm, m.Weights.FinalNormBias);
        if (withLogits == 1)
        {
            var s = rows[logitsFrom];
            Multiply(m.Weights.Output, b.XB.AsSpan(logitsFrom * dim, dim), s._logits, 1, pool);
            if (c.FinalSoftcap > 0) Softcap(s._logits, c.FinalSoftcap);
        }
        else if (withLogits > 1)
        {
            int vocab = c.VocabSize;
            float[] logits = b.Logits(withLogits);
            Multiply(m.Weights.Output, b.XB.AsSpan(logitsFrom * dim, withLogits * dim), logits, withLogits, pool);
            for (int i = logitsFrom; i < n; i++)
            {
                Span<float> l = rows[i]._logits;
                logits.AsSpan((i - logitsFrom) * vocab, vocab).CopyTo(l);
                if (c.FinalSoftcap > 0) Softcap(l, c.FinalSoftcap);
            }
        }

        // Retire: each sequence's clock stands after its last row, as after Forward.
        for (int i = 0; i < n; i++)
        {
            var s = rows[i];
            b.X.AsSpan(i * dim, dim).CopyTo(s._x);
            (s._token, s._pos, s._layer, s._stage, s._inFlight) = (tokens[i], positions[i], c.Layers, Stage.Fetch, false);
        }
        Array.Clear(b.Sequences, 0, n); // the buffers do not keep the sequences alive
    }

    /// <summary>The feed-forward activation of rows [start, end): gelu(up), gelu(gate) * up or silu(gate) * up into gate.</summary>
    private struct ActivationJob : IRowRangeJob
    {
        public FeedForward Kind;
        public float[] Gate, Up;
        public int Width;

        public readonly void Execute(int start, int end)
        {
            Span<float> gate = Gate.AsSpan(start * Width, (end - start) * Width);
            ReadOnlySpan<float> up = Up.AsSpan(start * Width, (end - start) * Width);
            if (Kind == FeedForward.Gelu) Gelu(gate);
            else if (Kind == FeedForward.GeluGated) GeluGated(gate, up);
            else SwiGlu(gate, up);
        }
    }

    /// <summary>Attention of items [start, end) of a chunk, item = row * heads + head: the head's scores over its row's
    /// cache, softmax and weighted sum, exactly as <see cref="Attention"/> computes that head (heads do not interact).</summary>
    private struct ChunkAttentionJob : IRowRangeJob
    {
        [ThreadStatic] private static float[]? _scores;

        public Transformer[] Rows;
        public int[] Positions;
        public float[] Q, Output;
        public int Layer, Heads;

        public readonly void Execute(int start, int end)
        {
            for (int item = start; item < end; item++)
            {
                int i = item / Heads, h = item % Heads, pos = Positions[i];
                var scores = _scores;
                if (scores is null || scores.Length < pos + 1) _scores = scores = new float[Math.Max(pos + 1, 256)];
                var s = Rows[i];
                int qDim = s.Config.QDim, headSize = s.Config.HeadSize;
                s.AttendHead(Layer, pos, h, Q.AsSpan(i * qDim + h * headSize, headSize), scores.AsSpan(0, pos + 1),
                    Output.AsSpan(i * qDim + h * headSize, headSize));
            }
        }
    }

    private static void Multiply(in TensorView w, ReadOnlySpan<float> x, Span<float> y, int count, WorkerPool? pool)
    {
        if (pool is null) Tensors.MatMul.Multiply(w, x, y, count);
        else Tensors.MatMul.Multiply(w, x, y, count, pool);
    }
}

/// <summary>The activations of a group of rows going through the cycles together, (rows, width) each.</summary>
internal sealed class BatchBuffers(LlamaConfig config, int capacity)
{
    private readonly LlamaConfig _config = config;
    private float[] _logits = [];

    public int Capacity { get; private set; }
    public float[] X = [], XB = [], XB2 = [], Q = [], K = [], V = [], AttnOut = [], HB = [], HB2 = [];

    /// <summary>The sequence and position of each row, for the attention job.</summary>
    public Transformer[] Sequences = [];
    public int[] Positions = [];

    /// <summary>Grows the buffers to hold <paramref name="rows"/> rows.</summary>
    public void Reserve(int rows)
    {
        if (rows <= Capacity && Capacity > 0) return;
        rows = Math.Max(rows, capacity);
        var c = _config;
        X = new float[rows * c.Dim];
        XB = GC.AllocateArray<float>(rows * c.Dim, pinned: true);
        XB2 = new float[rows * c.Dim];
        Q = new float[rows * c.QDim];
        K = new float[rows * c.KvDim];
        V = new float[rows * c.KvDim];
        AttnOut = new float[rows * c.QDim];
        HB = new float[rows * c.HiddenDim];
        HB2 = new float[rows * c.HiddenDim];
        Sequences = new Transformer[rows];
        Positions = new int[rows];
        Capacity = rows;
    }

    private readonly ProductInput _normed = new();

    /// <summary>XB's first <paramref name="rows"/> rows as the input of the products that share it (q, k and v; gate and
    /// up), loaded afresh: call once XB holds them.</summary>
    public unsafe ProductInput Normed(int rows)
    {
        fixed (float* xb = XB) return _normed.Load(xb, rows, _config.Dim); // XB is pinned
    }

    /// <summary>Room for the logits of <paramref name="rows"/> rows (rows, vocab).</summary>
    public float[] Logits(int rows)
    {
        if (_logits.Length < rows * _config.VocabSize) _logits = new float[rows * _config.VocabSize];
        return _logits;
    }
}
