using System.Runtime.Intrinsics;

namespace ClockLM.Nn;

/// <summary>
/// Causal grouped-query self-attention on float rows, forward and backward, as a few matrix products per block of
/// queries (the way FlashAttention organises it, without its on-chip tiling): the probabilities are never stored.
/// The forward pass keeps one number per (position, head), L = ln Σ_s e^(score_s), and the backward pass recomputes
/// the scores with the same product, so P = e^(score − L) is the forward pass's P bit for bit.
/// </summary>
/// <remarks>
/// Rows are laid out as in <see cref="Tensor{T}.CausalSelfAttention"/>: q is (batch·T × heads·hs), k and v are
/// (batch·T × kvHeads·hs), query head h reads key/value head h / (heads / kvHeads). One work item is one (sequence,
/// key/value head): it runs the query heads of its group one after another, so only it writes their dk and dv, and
/// each sum runs in a fixed order on one thread whatever the thread count. Queries go in blocks of 48 rows; the block
/// [i0, i1) attends to keys [0, i1), so only the block on the diagonal computes scores it then masks. An item packs
/// its keys and values for the products once (<see cref="Gemm.Pack"/>), and every block and query head of the group
/// multiplies by the leading part it needs.
/// <code>
/// forward:  S = Q·Kᵀ (block × keys);  L_t = ln Σ_{s≤t} e^(S_ts/√hs);  P_ts = e^(S_ts/√hs − L_t) (0 for s &gt; t);  Y = P·V
/// backward: dP = dY·Vᵀ;  D_t = dY_t·Y_t;  dS = P ⊙ (dP − D) / √hs;  dQ += dS·K;  dK += dSᵀ·Q;  dV += Pᵀ·dY
/// </code>
/// </remarks>
internal static unsafe class FusedAttention
{
    private const int QueryBlock = 48;
    [ThreadStatic] private static float[]? _scores;
    [ThreadStatic] private static float[]? _scoreGrads;
    [ThreadStatic] private static float[]? _packed1;
    [ThreadStatic] private static float[]? _packed2;
    [ThreadStatic] private static float[]? _packed3;

    /// <summary>The sizes of one attention call.</summary>
    public readonly record struct Shape(int Batch, int SeqLen, int Heads, int KvHeads, int HeadSize)
    {
        public int Dim => Heads * HeadSize;
        public int KvDim => KvHeads * HeadSize;
        public int Group => Heads / KvHeads;
        public float Scale => 1f / MathF.Sqrt(HeadSize);

        /// <summary>Multiply-adds of the forward pass (both products, the masked half of diagonal blocks included).</summary>
        public long ForwardWork => 2L * Batch * Heads * HeadSize * SeqLen * (SeqLen + QueryBlock) / 2;
    }

    /// <summary>y (batch·T × dim) = attention of q over k, v; <paramref name="logSumExp"/> (batch·T × heads) receives L.</summary>
    public static void Forward(float[] q, float[] k, float[] v, float[] y, float[] logSumExp, Shape shape, ComputeContext compute)
    {
        compute.For(shape.Batch * shape.KvHeads, shape.ForwardWork, (start, end) =>
        {
            fixed (float* pq = q, pk = k, pv = v, py = y, pl = logSumExp)
                for (int item = start; item < end; item++)
                    ForwardItem(pq, pk, pv, py, pl, shape, item);
        });
    }

    /// <summary>Adds the gradients of q, k and v, given y's gradient <paramref name="dy"/>, into <paramref name="dq"/>,
    /// <paramref name="dk"/> and <paramref name="dv"/>.</summary>
    public static void Backward(float[] q, float[] k, float[] v, float[] y, float[] dy, float[] logSumExp,
        float[] dq, float[] dk, float[] dv, Shape shape, ComputeContext compute)
    {
        compute.For(shape.Batch * shape.KvHeads, 3 * shape.ForwardWork, (start, end) =>
        {
            fixed (float* pq = q, pk = k, pv = v, py = y, pdy = dy, pl = logSumExp, pdq = dq, pdk = dk, pdv = dv)
                for (int item = start; item < end; item++)
                    BackwardItem(pq, pk, pv, py, pdy, pl, pdq, pdk, pdv, shape, item);
        });
    }

    private static void ForwardItem(float* q, float* k, float* v, float* y, float* logSumExp, Shape shape, int item)
    {
        int T = shape.SeqLen, dim = shape.Dim, kvDim = shape.KvDim, hs = shape.HeadSize;
        int b = item / shape.KvHeads, kvh = item % shape.KvHeads;
        float* keys0 = k + (long)b * T * kvDim + kvh * hs, values0 = v + (long)b * T * kvDim + kvh * hs;
        float* scores = Gemm.PinnedBuffer(ref _scores, (long)QueryBlock * T);
        // Kᵀ (hs × T) for the scores, V (T × hs) for the outputs.
        var keysT = Gemm.Pack(StridedMatrix.Transposed(keys0, kvDim), hs, T, Gemm.PinnedBuffer(ref _packed1, Gemm.PackedLength(hs, T)));
        var values = Gemm.Pack(StridedMatrix.RowMajor(values0, kvDim), T, hs, Gemm.PinnedBuffer(ref _packed2, Gemm.PackedLength(T, hs)));
        for (int h = kvh * shape.Group; h < (kvh + 1) * shape.Group; h++)
        {
            float* queries0 = q + (long)b * T * dim + h * hs, out0 = y + (long)b * T * dim + h * hs;
            for (int i0 = 0; i0 < T; i0 += QueryBlock)
            {
                int rows = Math.Min(QueryBlock, T - i0), keys = i0 + rows;
                Probabilities(queries0 + (long)i0 * dim, keysT, scores, rows, keys, i0, shape, logSumExp + ((long)b * T + i0) * shape.Heads + h, recompute: false);
                // Y_block = P·V[0, keys)
                Gemm.MultiplyPacked(StridedMatrix.RowMajor(scores, keys), values, out0 + (long)i0 * dim, dim, rows, hs, keys, accumulate: false, pool: null);
            }
        }
    }

    private static void BackwardItem(float* q, float* k, float* v, float* y, float* dy, float* logSumExp,
        float* dq, float* dk, float* dv, Shape shape, int item)
    {
        int T = shape.SeqLen, dim = shape.Dim, kvDim = shape.KvDim, hs = shape.HeadSize;
        int b = item / shape.KvHeads, kvh = item % shape.KvHeads;
        long kvOffset = (long)b * T * kvDim + kvh * hs;
        float* keys0 = k + kvOffset, values0 = v + kvOffset, dKeys0 = dk + kvOffset, dValues0 = dv + kvOffset;
        float* p = Gemm.PinnedBuffer(ref _scores, (long)QueryBlock * T);
        float* g = Gemm.PinnedBuffer(ref _scoreGrads, (long)QueryBlock * T);
        // Kᵀ (hs × T) for the scores, Vᵀ (hs × T) for dP, K (T × hs) for dQ.
        var keysT = Gemm.Pack(StridedMatrix.Transposed(keys0, kvDim), hs, T, Gemm.PinnedBuffer(ref _packed1, Gemm.PackedLength(hs, T)));
        var valuesT = Gemm.Pack(StridedMatrix.Transposed(values0, kvDim), hs, T, Gemm.PinnedBuffer(ref _packed2, Gemm.PackedLength(hs, T)));
        var keyRows = Gemm.Pack(StridedMatrix.RowMajor(keys0, kvDim), T, hs, Gemm.PinnedBuffer(ref _packed3, Gemm.PackedLength(T, hs)));
        float scale = shape.Scale;
        for (int h = kvh * shape.Group; h < (kvh + 1) * shape.Group; h++)
        {
            long qOffset = (long)b * T * dim + h * hs;
            for (int i0 = 0; i0 < T; i0 += QueryBlock)
            {
                int rows = Math.Min(QueryBlock, T - i0), keys = i0 + rows;
                float* queries = q + qOffset + (long)i0 * dim, dQueries = dq + qOffset + (long)i0 * dim;
                float* outs = y + qOffset + (long)i0 * dim, dOuts = dy + qOffset + (long)i0 * dim;
                Probabilities(queries, keysT, p, rows, keys, i0, shape, logSumExp + ((long)b * T + i0) * shape.Heads + h, recompute: true);
                // dP = dY·Vᵀ (rows × keys)
                Gemm.MultiplyPacked(StridedMatrix.RowMajor(dOuts, dim), valuesT, g, keys, rows, keys, hs, accumulate: false, pool: null);
                for (int r = 0; r < rows; r++)
                {
                    float* dOut = dOuts + (long)r * dim, o = outs + (long)r * dim;
                    float d = 0;
                    for (int c = 0; c < hs; c++) d += dOut[c] * o[c];
                    ScoreGradients(p + (long)r * keys, g + (long)r * keys, keys, d, scale);
                }
                // dQ += dS·K;  dK += dSᵀ·Q;  dV += Pᵀ·dY
                Gemm.MultiplyPacked(StridedMatrix.RowMajor(g, keys), keyRows, dQueries, dim, rows, hs, keys, accumulate: true, pool: null);
                Gemm.Multiply(StridedMatrix.Transposed(g, keys), StridedMatrix.RowMajor(queries, dim), dKeys0, kvDim, keys, hs, rows, accumulate: true, pool: null);
                Gemm.Multiply(StridedMatrix.Transposed(p, keys), StridedMatrix.RowMajor(dOuts, dim), dValues0, kvDim, keys, hs, rows, accumulate: true, pool: null);
            }
        }
    }

    /// <summary>
    /// P (rows × keys, row stride keys) for queries i0.. of one head: S = Q·Kᵀ, then row r (position t = i0 + r) holds
    /// e^(S/√hs − L_t) for keys 0..t and zeros after. The forward pass computes L_t and stores it at
    /// <paramref name="logSumExp"/>[r·heads]; the backward pass (<paramref name="recompute"/>) reads it back.
    /// </summary>
    private static void Probabilities(float* queries, Gemm.PackedPanels keysT, float* p, int rows, int keys, int i0, Shape shape, float* logSumExp, bool recompute)
    {
        Gemm.MultiplyPacked(StridedMatrix.RowMajor(queries, shape.Dim), keysT, p, keys, rows, keys, shape.HeadSize, accumulate: false, pool: null);
        float scale = shape.Scale;
        for (int r = 0; r < rows; r++)
        {
            var row = new Span<float>(p + (long)r * keys, keys);
            int visible = i0 + r + 1;
            ref float l = ref logSumExp[(long)r * shape.Heads];
            if (!recompute) l = FloatRows.LogSumExp(row[..visible], scale);
            FloatRows.ExpShifted(row[..visible], scale, l, row[..visible]);
            row[visible..].Clear();
        }
    }

    /// <summary>dS = P ⊙ (dP − D)·scale over one row, in place of dP (zeros where P is masked, as P is).</summary>
    private static void ScoreGradients(float* p, float* g, int keys, float d, float scale)
    {
        int j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vd = Vector256.Create(d);
            var vs = Vector256.Create(scale);
            for (; j + 8 <= keys; j += 8)
                (Vector256.Load(p + j) * (Vector256.Load(g + j) - vd) * vs).Store(g + j);
        }
        for (; j < keys; j++) g[j] = p[j] * (g[j] - d) * scale;
    }
}
