using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Attention of a group of query heads that share one key/value head (grouped-query attention; a group of one
/// without it) over KV-cache rows stored as F32, F16 or Q8_0 (<see cref="CacheRows"/>), read in place: the scores
/// q_g · k_t of every query g and position t, and the weighted sums Σ_t w_g[t] · v_t. A key or value is loaded (and
/// widened) once for all the queries of the group.
/// </summary>
/// <remarks>
/// Every result is bit-identical to <see cref="AttentionKernels"/>' on the same path, one query at a time, over the
/// rows converted to floats: a compact row's values are exact floats (an f16; an f16 scale times an 8-bit code), each
/// (query, position) score is the same products accumulated in the same order and reduced by the same lane sums, and
/// each output lane of a weighted sum is the same chain of fused multiply-adds. So the F32 cache gives the bits it gave
/// before grouping, and an F16 or Q8_0 cache the bits of the F32 kernels over its values. The vector path runs where
/// AVX2 and FMA do, for head sizes (and head offsets in the row) that are multiples of 8; the scalar path elsewhere.
/// F16 rows whose halves are all finite (<see cref="CacheRows.FiniteHalves"/>) are widened in three operations to
/// their values times 2^-112, the queries or weights scaled by 2^112 to match: the same bits again (see below).
/// </remarks>
internal static unsafe class GroupedAttention
{
    /// <summary>
    /// scores[g · scoreStride + t] = scale · (queries_g · keys_t) for every query g (queries: (groups, headSize)) and
    /// row t of <paramref name="keys"/>. Returns true when F16 rows took the exact widening on the vector path (a
    /// fallback: see <see cref="CacheRows.FiniteHalves"/>).
    /// </summary>
    public static bool Scores(ReadOnlySpan<float> queries, int headSize, CacheRows keys, float scale, Span<float> scores, int scoreStride) =>
        Scores(queries, headSize, keys, scale, scores, scoreStride, KernelOptions.BestPath);

    /// <summary><see cref="Scores(ReadOnlySpan{float}, int, CacheRows, float, Span{float}, int)"/> on a chosen path.</summary>
    internal static bool Scores(ReadOnlySpan<float> queries, int headSize, CacheRows keys, float scale, Span<float> scores, int scoreStride, KernelPath path)
    {
        int groups = Groups(queries.Length, headSize), n = keys.Count;
        if (groups == 0 || n == 0) return false;
        keys.Check(headSize, "keys");
        CheckOutput(scores.Length, groups, scoreStride, n, "scores");
        fixed (float* q = queries)
        fixed (byte* k = keys.Bytes)
        fixed (float* s = scores)
        {
            var a = new Arguments(groups, headSize, n, k, keys.RowBytes, keys.Offset);
            bool vector = Vectorizes(path, headSize, keys.Offset);
            switch (keys.Type)
            {
                case GgmlType.F32: if (vector) ScoresVector<F32CacheRows>(a, q, scale, s, scoreStride); else ScoresScalar<F32CacheRows>(a, q, scale, s, scoreStride); break;
                case GgmlType.F16:
                    if (!vector) ScoresScalar<F16CacheRows>(a, q, scale, s, scoreStride);
                    else if (!keys.FiniteHalves || !ScoresOfFiniteHalves(a, q, scale, s, scoreStride))
                    {
                        ScoresVector<F16CacheRows>(a, q, scale, s, scoreStride);
                        return true;
                    }
                    break;
                case GgmlType.Q8_0: if (vector) ScoresVector<Q8_0CacheRows>(a, q, scale, s, scoreStride); else ScoresScalar<Q8_0CacheRows>(a, q, scale, s, scoreStride); break;
                default: throw new ArgumentOutOfRangeException(nameof(keys), keys.Type, "KV cache rows are F32, F16 or Q8_0");
            }
        }
        return false;
    }

    /// <summary>
    /// output_g = Σ_t weights[g · weightStride + t] · values_t for every query g (output: (groups, headSize), overwritten)
    /// over the rows of <paramref name="values"/>. Returns true when F16 rows took the exact widening on the vector path
    /// (a fallback: see <see cref="CacheRows.FiniteHalves"/>).
    /// </summary>
    public static bool WeightedSums(ReadOnlySpan<float> weights, int weightStride, CacheRows values, Span<float> output, int headSize) =>
        WeightedSums(weights, weightStride, values, output, headSize, KernelOptions.BestPath);

    /// <summary><see cref="WeightedSums(ReadOnlySpan{float}, int, CacheRows, Span{float}, int)"/> on a chosen path.</summary>
    internal static bool WeightedSums(ReadOnlySpan<float> weights, int weightStride, CacheRows values, Span<float> output, int headSize, KernelPath path)
    {
        int groups = Groups(output.Length, headSize), n = values.Count;
        output.Clear();
        if (groups == 0 || n == 0) return false;
        values.Check(headSize, "values");
        CheckOutput(weights.Length, groups, weightStride, n, "weights");
        fixed (float* w = weights)
        fixed (byte* v = values.Bytes)
        fixed (float* o = output)
        {
            var a = new Arguments(groups, headSize, n, v, values.RowBytes, values.Offset);
            bool vector = Vectorizes(path, headSize, values.Offset);
            switch (values.Type)
            {
                case GgmlType.F32: if (vector) SumsVector<F32CacheRows>(a, w, weightStride, o); else SumsScalar<F32CacheRows>(a, w, weightStride, o); break;
                case GgmlType.F16:
                    if (!vector) SumsScalar<F16CacheRows>(a, w, weightStride, o);
                    else if (!values.FiniteHalves || !SumsOfFiniteHalves(a, w, weightStride, o))
                    {
                        SumsVector<F16CacheRows>(a, w, weightStride, o);
                        return true;
                    }
                    break;
                case GgmlType.Q8_0: if (vector) SumsVector<Q8_0CacheRows>(a, w, weightStride, o); else SumsScalar<Q8_0CacheRows>(a, w, weightStride, o); break;
                default: throw new ArgumentOutOfRangeException(nameof(values), values.Type, "KV cache rows are F32, F16 or Q8_0");
            }
        }
        return false;
    }

    // ---- finite halves: the rows widened to value · 2^-112 in three operations, the other factor scaled by 2^112
    //
    // Scaling a float by a power of two is exact while it stays finite (subnormals only gain bits), and so is the
    // widening, so each product q'·k' or w'·v' is the same real number as q·k or w·v, and every rounding after it (the
    // products, the fused multiply-adds, the lane sums) is the same: the same bits as the exact widening. A query or
    // weight of magnitude 2^16 or more (or NaN) would not survive the scaling: those calls take the exact widening.

    /// <summary>Most query values scaled on the stack (queries × head size); more take the exact widening.</summary>
    private const int MostScaledQueries = 4096;

    [ThreadStatic] private static float[]? _scaledWeights;

    private static bool ScoresOfFiniteHalves(Arguments a, float* q, float scale, float* scores, int stride)
    {
        int length = a.Groups * a.HeadSize;
        if (length > MostScaledQueries) return false;
        float* scaled = stackalloc float[length];
        if (!ScaleByCompensation(q, scaled, length)) return false;
        ScoresVector<F16FiniteCacheRows>(a, scaled, scale, scores, stride);
        return true;
    }

    private static bool SumsOfFiniteHalves(Arguments a, float* w, int stride, float* output)
    {
        // The weights, (groups, n) with rows a cache line or two apart modulo 4 KiB, as the forward pass lays out its scores:
        // the kernels read the rows in turns, and rows 4 KiB apart would share the L1 cache's sets.
        int scaledStride = (a.N + 15) / 16 * 16 + 16;
        long length = (long)a.Groups * scaledStride;
        var buffer = _scaledWeights;
        if (buffer is null || buffer.Length < length) _scaledWeights = buffer = new float[Math.Max(length, 1024)];
        fixed (float* scaled = buffer)
        {
            for (int g = 0; g < a.Groups; g++)
                if (!ScaleByCompensation(w + (long)g * stride, scaled + (long)g * scaledStride, a.N)) return false;
            SumsVector<F16FiniteCacheRows>(a, scaled, scaledStride, output);
        }
        return true;
    }

    /// <summary>y = x · 2^112 for n values; false if one of them comes out infinite or NaN.</summary>
    private static bool ScaleByCompensation(float* x, float* y, int n)
    {
        float factor = F16FiniteCacheRows.Compensation;
        var f = Vector256.Create(factor);
        var exponent = Vector256.Create(0x7f800000u);
        var overflow = Vector256<uint>.Zero;
        int i = 0;
        for (; i + 8 <= n; i += 8)
        {
            var v = Vector256.Load(x + i) * f;
            Vector256.Store(v, y + i);
            overflow |= Vector256.Equals(v.AsUInt32() & exponent, exponent);
        }
        bool finite = overflow == Vector256<uint>.Zero;
        for (; i < n; i++)
        {
            y[i] = x[i] * factor;
            finite &= float.IsFinite(y[i]);
        }
        return finite;
    }

    private static bool Vectorizes(KernelPath path, int headSize, int offset) =>
        path >= KernelPath.Vector256 && headSize % 8 == 0 && offset % 8 == 0 && Avx2.IsSupported && Fma.IsSupported;

    private static int Groups(int length, int headSize)
    {
        if (headSize < 1 || length % headSize != 0)
            throw new ArgumentException($"attention: {length} query or output values are not whole heads of {headSize}");
        return length / headSize;
    }

    private static void CheckOutput(int length, int groups, int stride, int n, string name)
    {
        if (stride < n || length < (long)(groups - 1) * stride + n)
            throw new ArgumentException($"attention {name}: {groups} rows of {n} values {stride} apart need {(long)(groups - 1) * stride + n} floats, got {length}");
    }

    /// <summary>The shape of one call: queries in the group, head size, rows, and where the head's values are.</summary>
    private readonly struct Arguments(int groups, int headSize, int n, byte* rows, int rowBytes, int offset)
    {
        public readonly int Groups = groups, HeadSize = headSize, N = n, RowBytes = rowBytes, Offset = offset;
        public readonly byte* Rows = rows;

        public byte* Row(int t) => Rows + (long)t * RowBytes;
    }

    // ---- scalar references: left to right, as AttentionKernels' scalar paths

    private static void ScoresScalar<TRow>(Arguments a, float* q, float scale, float* scores, int stride) where TRow : ICacheRowFormat
    {
        for (int g = 0; g < a.Groups; g++, q += a.HeadSize)
            for (int t = 0; t < a.N; t++)
            {
                byte* row = a.Row(t);
                float s = 0;
                for (int i = 0; i < a.HeadSize; i++) s += q[i] * TRow.Load(row, a.Offset + i);
                scores[g * stride + t] = s * scale;
            }
    }

    private static void SumsScalar<TRow>(Arguments a, float* w, int stride, float* output) where TRow : ICacheRowFormat
    {
        for (int g = 0; g < a.Groups; g++, w += stride, output += a.HeadSize)
            for (int t = 0; t < a.N; t++)
            {
                byte* row = a.Row(t);
                for (int i = 0; i < a.HeadSize; i++) output[i] += w[t] * TRow.Load(row, a.Offset + i);
            }
    }

    // ---- scores, 256-bit vectors
    //
    // The score of query g at position t is, as in AttentionKernels: lane i of p = q[i..i+8) * k[i..i+8) then
    // p = fma(q[c+i], k[c+i], p) for every further 8 values c, its lanes summed ((l0 + l1) + (l2 + l3)) + ((l4 + l5) +
    // (l6 + l7)) by LaneSums.Of8, times the scale. Of8 reduces eight such vectors at once, so each block below fills
    // eight accumulators: eight positions of one query, four positions of two, two of four, or one of eight (queries
    // beyond the group's repeat its last one, and rows beyond the last repeat it; their results are not stored).

    private static void ScoresVector<TRow>(Arguments a, float* q, float scale, float* scores, int stride) where TRow : ICacheRowFormat
    {
        float* lanes = stackalloc float[8];
        for (int g0 = 0; g0 < a.Groups; g0 += 8)
        {
            int queries = Math.Min(8, a.Groups - g0);
            float* q0 = q + g0 * a.HeadSize, s0 = scores + (long)g0 * stride;
            if (queries == 1) Scores8x1<TRow>(a, q0, scale, s0, lanes);
            else if (queries == 2) Scores4x2<TRow>(a, q0, scale, s0, stride, lanes);
            else if (queries <= 4) Scores2x4<TRow>(a, q0, queries, scale, s0, stride, lanes);
            else Scores1x8<TRow>(a, q0, queries, scale, s0, stride, lanes);
        }
    }

    /// <summary>Query <paramref name="g"/> of a block of <paramref name="queries"/> (the last one for g beyond them).</summary>
    private static float* Query(float* q0, int g, int queries, int headSize) => q0 + Math.Min(g, queries - 1) * headSize;

    /// <summary>Row t, or the last row for t beyond it.</summary>
    private static byte* RowOrLast(Arguments a, int t) => a.Row(Math.Min(t, a.N - 1));

    private static void Scores8x1<TRow>(Arguments a, float* q, float scale, float* scores, float* lanes) where TRow : ICacheRowFormat
    {
        var s = Vector256.Create(scale);
        for (int t = 0; t < a.N; t += 8)
        {
            var r = LaneSums.Of8(
                Products<TRow>(a, q, RowOrLast(a, t)), Products<TRow>(a, q, RowOrLast(a, t + 1)),
                Products<TRow>(a, q, RowOrLast(a, t + 2)), Products<TRow>(a, q, RowOrLast(a, t + 3)),
                Products<TRow>(a, q, RowOrLast(a, t + 4)), Products<TRow>(a, q, RowOrLast(a, t + 5)),
                Products<TRow>(a, q, RowOrLast(a, t + 6)), Products<TRow>(a, q, RowOrLast(a, t + 7))) * s;
            if (t + 8 <= a.N) { Vector256.Store(r, scores + t); continue; }
            Vector256.Store(r, lanes);
            for (int j = 0; t + j < a.N; j++) scores[t + j] = lanes[j];
        }
    }

    /// <summary>Lane i: Σ over chunks c of q[c + i] · k[c + i], the first product plain, the rest fused.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Products<TRow>(Arguments a, float* q, byte* row) where TRow : ICacheRowFormat
    {
        var p = Vector256.Load(q) * TRow.Load8(row, a.Offset);
        for (int c = 8; c < a.HeadSize; c += 8)
            p = Vector256.FusedMultiplyAdd(Vector256.Load(q + c), TRow.Load8(row, a.Offset + c), p);
        return p;
    }

    private static void Scores4x2<TRow>(Arguments a, float* q, float scale, float* scores, int stride, float* lanes) where TRow : ICacheRowFormat
    {
        var s = Vector256.Create(scale);
        float* q1 = q + a.HeadSize;
        for (int t = 0; t < a.N; t += 4)
        {
            byte* r0 = RowOrLast(a, t), r1 = RowOrLast(a, t + 1), r2 = RowOrLast(a, t + 2), r3 = RowOrLast(a, t + 3);
            Vector256<float> k0 = TRow.Load8(r0, a.Offset), k1 = TRow.Load8(r1, a.Offset), k2 = TRow.Load8(r2, a.Offset), k3 = TRow.Load8(r3, a.Offset);
            Vector256<float> x0 = Vector256.Load(q), x1 = Vector256.Load(q1);
            Vector256<float> a00 = x0 * k0, a01 = x1 * k0, a10 = x0 * k1, a11 = x1 * k1, a20 = x0 * k2, a21 = x1 * k2, a30 = x0 * k3, a31 = x1 * k3;
            for (int c = 8; c < a.HeadSize; c += 8)
            {
                k0 = TRow.Load8(r0, a.Offset + c); k1 = TRow.Load8(r1, a.Offset + c);
                k2 = TRow.Load8(r2, a.Offset + c); k3 = TRow.Load8(r3, a.Offset + c);
                x0 = Vector256.Load(q + c); x1 = Vector256.Load(q1 + c);
                a00 = Vector256.FusedMultiplyAdd(x0, k0, a00); a01 = Vector256.FusedMultiplyAdd(x1, k0, a01);
                a10 = Vector256.FusedMultiplyAdd(x0, k1, a10); a11 = Vector256.FusedMultiplyAdd(x1, k1, a11);
                a20 = Vector256.FusedMultiplyAdd(x0, k2, a20); a21 = Vector256.FusedMultiplyAdd(x1, k2, a21);
                a30 = Vector256.FusedMultiplyAdd(x0, k3, a30); a31 = Vector256.FusedMultiplyAdd(x1, k3, a31);
            }
            Vector256.Store(LaneSums.Of8(a00, a01, a10, a11, a20, a21, a30, a31) * s, lanes);
            for (int j = 0; j < 4 && t + j < a.N; j++)
            {
                scores[t + j] = lanes[2 * j];
                scores[stride + t + j] = lanes[2 * j + 1];
            }
        }
    }

    private static void Scores2x4<TRow>(Arguments a, float* q, int queries, float scale, float* scores, int stride, float* lanes) where TRow : ICacheRowFormat
    {
        var s = Vector256.Create(scale);
        int h = a.HeadSize;
        float* q0 = q, q1 = Query(q, 1, queries, h), q2 = Query(q, 2, queries, h), q3 = Query(q, 3, queries, h);
        for (int t = 0; t < a.N; t += 2)
        {
            byte* r0 = RowOrLast(a, t), r1 = RowOrLast(a, t + 1);
            Vector256<float> k0 = TRow.Load8(r0, a.Offset), k1 = TRow.Load8(r1, a.Offset);
            Vector256<float> x0 = Vector256.Load(q0), x1 = Vector256.Load(q1), x2 = Vector256.Load(q2), x3 = Vector256.Load(q3);
            Vector256<float> a00 = x0 * k0, a01 = x1 * k0, a02 = x2 * k0, a03 = x3 * k0, a10 = x0 * k1, a11 = x1 * k1, a12 = x2 * k1, a13 = x3 * k1;
            for (int c = 8; c < h; c += 8)
            {
                k0 = TRow.Load8(r0, a.Offset + c); k1 = TRow.Load8(r1, a.Offset + c);
                x0 = Vector256.Load(q0 + c); x1 = Vector256.Load(q1 + c); x2 = Vector256.Load(q2 + c); x3 = Vector256.Load(q3 + c);
                a00 = Vector256.FusedMultiplyAdd(x0, k0, a00); a01 = Vector256.FusedMultiplyAdd(x1, k0, a01);
                a02 = Vector256.FusedMultiplyAdd(x2, k0, a02); a03 = Vector256.FusedMultiplyAdd(x3, k0, a03);
                a10 = Vector256.FusedMultiplyAdd(x0, k1, a10); a11 = Vector256.FusedMultiplyAdd(x1, k1, a11);
                a12 = Vector256.FusedMultiplyAdd(x2, k1, a12); a13 = Vector256.FusedMultiplyAdd(x3, k1, a13);
            }
            Vector256.Store(LaneSums.Of8(a00, a01, a02, a03, a10, a11, a12, a13) * s, lanes);
            for (int j = 0; j < 2 && t + j < a.N; j++)
                for (int g = 0; g < queries; g++) scores[g * stride + t + j] = lanes[4 * j + g];
        }
    }

    private static void Scores1x8<TRow>(Arguments a, float* q, int queries, float scale, float* scores, int stride, float* lanes) where TRow : ICacheRowFormat
    {
        var s = Vector256.Create(scale);
        int h = a.HeadSize;
        float* q0 = q, q1 = Query(q, 1, queries, h), q2 = Query(q, 2, queries, h), q3 = Query(q, 3, queries, h);
        float* q4 = Query(q, 4, queries, h), q5 = Query(q, 5, queries, h), q6 = Query(q, 6, queries, h), q7 = Query(q, 7, queries, h);
        for (int t = 0; t < a.N; t++)
        {
            byte* row = a.Row(t);
            var k = TRow.Load8(row, a.Offset);
            Vector256<float> a0 = Vector256.Load(q0) * k, a1 = Vector256.Load(q1) * k, a2 = Vector256.Load(q2) * k, a3 = Vector256.Load(q3) * k;
            Vector256<float> a4 = Vector256.Load(q4) * k, a5 = Vector256.Load(q5) * k, a6 = Vector256.Load(q6) * k, a7 = Vector256.Load(q7) * k;
            for (int c = 8; c < h; c += 8)
            {
                k = TRow.Load8(row, a.Offset + c);
                a0 = Vector256.FusedMultiplyAdd(Vector256.Load(q0 + c), k, a0); a1 = Vector256.FusedMultiplyAdd(Vector256.Load(q1 + c), k, a1);
                a2 = Vector256.FusedMultiplyAdd(Vector256.Load(q2 + c), k, a2); a3 = Vector256.FusedMultiplyAdd(Vector256.Load(q3 + c), k, a3);
                a4 = Vector256.FusedMultiplyAdd(Vector256.Load(q4 + c), k, a4); a5 = Vector256.FusedMultiplyAdd(Vector256.Load(q5 + c), k, a5);
                a6 = Vector256.FusedMultiplyAdd(Vector256.Load(q6 + c), k, a6); a7 = Vector256.FusedMultiplyAdd(Vector256.Load(q7 + c), k, a7);
            }
            var r = LaneSums.Of8(a0, a1, a2, a3, a4, a5, a6, a7) * s;
            if (queries == 8) Scatter8(r, scores + t, stride);
            else
            {
                Vector256.Store(r, lanes);
                for (int g = 0; g < queries; g++) scores[g * stride + t] = lanes[g];
            }
        }
    }

    /// <summary>Lane g of <paramref name="r"/> to p[g · stride].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scatter8(Vector256<float> r, float* p, int stride)
    {
        var lo = r.GetLower();
        var hi = r.GetUpper();
        p[0] = lo.ToScalar();
        p[stride] = lo.GetElement(1);
        p[2 * stride] = lo.GetElement(2);
        p[3 * stride] = lo.GetElement(3);
        p += 4 * stride;
        p[0] = hi.ToScalar();
        p[stride] = hi.GetElement(1);
        p[2 * stride] = hi.GetElement(2);
        p[3 * stride] = hi.GetElement(3);
    }

    // ---- weighted sums, 256-bit vectors
    //
    // As in AttentionKernels: the values of a head in whole blocks of 32 go eight at a time into one accumulator per
    // (query, 8 values), a = fma(w[t], v_t, a) over t in order from zero; the rest of the head (heads of 8, 16 or 24
    // values, or the last 8..24 of others) eight at a time into four accumulators by t mod 4, added as (a0 + a1) +
    // (a2 + a3). A pass over the rows fills eight accumulators (four of one query, four of two, two of four, one of
    // eight), sharing each loaded value among the queries.

    private static void SumsVector<TRow>(Arguments a, float* w, int stride, float* output) where TRow : ICacheRowFormat
    {
        int h = a.HeadSize, whole = h / 32 * 32;
        for (int g0 = 0; g0 < a.Groups; g0 += 8)
        {
            int queries = Math.Min(8, a.Groups - g0);
            float* w0 = w + (long)g0 * stride, o0 = output + g0 * h;
            if (queries == 1) for (int c = 0; c < whole; c += 32) Sums4x1<TRow>(a, w0, o0, c);
            else if (queries == 2) for (int c = 0; c < whole; c += 32) Sums4x2<TRow>(a, w0, stride, o0, c);
            // Three or more queries take several passes over the rows for a block of 32 values: positions go a tile
            // at a time through all of them, the rows of a tile staying in the L1 cache.
            else
                for (int t0 = 0; t0 < a.N; t0 += SumsTile)
                {
                    int t1 = Math.Min(a.N, t0 + SumsTile);
                    if (queries <= 4) for (int c = 0; c < whole; c += 16) Sums2x4<TRow>(a, w0, stride, queries, o0, c, t0, t1);
                    else for (int c = 0; c < whole; c += 8) Sums1x8<TRow>(a, w0, stride, queries, o0, c, t0, t1);
                }
            for (int g = 0; g < queries; g++)
                for (int c = whole; c < h; c += 8) SumsInterleaved<TRow>(a, w0 + (long)g * stride, o0 + g * h, c);
        }
    }

    private static void Sums4x1<TRow>(Arguments a, float* w, float* output, int c) where TRow : ICacheRowFormat
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int at = a.Offset + c;
        for (int t = 0; t < a.N; t++)
        {
            byte* row = a.Row(t);
            var wt = Vector256.Create(w[t]);
            a0 = Vector256.FusedMultiplyAdd(wt, TRow.Load8(row, at), a0);
            a1 = Vector256.FusedMultiplyAdd(wt, TRow.Load8(row, at + 8), a1);
            a2 = Vector256.FusedMultiplyAdd(wt, TRow.Load8(row, at + 16), a2);
            a3 = Vector256.FusedMultiplyAdd(wt, TRow.Load8(row, at + 24), a3);
        }
        Vector256.Store(a0, output + c);
        Vector256.Store(a1, output + c + 8);
        Vector256.Store(a2, output + c + 16);
        Vector256.Store(a3, output + c + 24);
    }

    private static void Sums4x2<TRow>(Arguments a, float* w, int stride, float* output, int c) where TRow : ICacheRowFormat
    {
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        float* w1 = w + stride;
        int at = a.Offset + c;
        for (int t = 0; t < a.N; t++)
        {
            byte* row = a.Row(t);
            Vector256<float> v0 = TRow.Load8(row, at), v1 = TRow.Load8(row, at + 8), v2 = TRow.Load8(row, at + 16), v3 = TRow.Load8(row, at + 24);
            Vector256<float> x0 = Vector256.Create(w[t]), x1 = Vector256.Create(w1[t]);
            a00 = Vector256.FusedMultiplyAdd(x0, v0, a00); a01 = Vector256.FusedMultiplyAdd(x0, v1, a01);
            a02 = Vector256.FusedMultiplyAdd(x0, v2, a02); a03 = Vector256.FusedMultiplyAdd(x0, v3, a03);
            a10 = Vector256.FusedMultiplyAdd(x1, v0, a10); a11 = Vector256.FusedMultiplyAdd(x1, v1, a11);
            a12 = Vector256.FusedMultiplyAdd(x1, v2, a12); a13 = Vector256.FusedMultiplyAdd(x1, v3, a13);
        }
        float* o1 = output + a.HeadSize;
        Vector256.Store(a00, output + c); Vector256.Store(a01, output + c + 8); Vector256.Store(a02, output + c + 16); Vector256.Store(a03, output + c + 24);
        Vector256.Store(a10, o1 + c); Vector256.Store(a11, o1 + c + 8); Vector256.Store(a12, o1 + c + 16); Vector256.Store(a13, o1 + c + 24);
    }

    /// <summary>Sixteen values of three or four queries' outputs over positions [t0, t1), carried on as in
    /// <see cref="Sums1x8{TRow}"/>.</summary>
    private static void Sums2x4<TRow>(Arguments a, float* w, int stride, int queries, float* output, int c, int t0, int t1) where TRow : ICacheRowFormat
    {
        int h = a.HeadSize;
        float* o1 = output + h + c, o2 = output + 2 * h + c, o3 = output + 3 * h + c;
        Vector256<float> a00 = Vector256.Load(output + c), a01 = Vector256.Load(output + c + 8);
        Vector256<float> a10 = Vector256.Load(o1), a11 = Vector256.Load(o1 + 8), a20 = Vector256.Load(o2), a21 = Vector256.Load(o2 + 8);
        Vector256<float> a30 = queries > 3 ? Vector256.Load(o3) : default, a31 = queries > 3 ? Vector256.Load(o3 + 8) : default;
        float* w1 = Query(w, 1, queries, stride), w2 = Query(w, 2, queries, stride), w3 = Query(w, 3, queries, stride);
        int at = a.Offset + c;
        for (int t = t0; t < t1; t++)
        {
            byte* row = a.Row(t);
            Vector256<float> v0 = TRow.Load8(row, at), v1 = TRow.Load8(row, at + 8);
            Vector256<float> x0 = Vector256.Create(w[t]), x1 = Vector256.Create(w1[t]), x2 = Vector256.Create(w2[t]), x3 = Vector256.Create(w3[t]);
            a00 = Vector256.FusedMultiplyAdd(x0, v0, a00); a01 = Vector256.FusedMultiplyAdd(x0, v1, a01);
            a10 = Vector256.FusedMultiplyAdd(x1, v0, a10); a11 = Vector256.FusedMultiplyAdd(x1, v1, a11);
            a20 = Vector256.FusedMultiplyAdd(x2, v0, a20); a21 = Vector256.FusedMultiplyAdd(x2, v1, a21);
            a30 = Vector256.FusedMultiplyAdd(x3, v0, a30); a31 = Vector256.FusedMultiplyAdd(x3, v1, a31);
        }
        Store2(a00, a01, output + c);
        Store2(a10, a11, o1);
        Store2(a20, a21, o2);
        if (queries > 3) Store2(a30, a31, o3);
    }

    private static void Store2(Vector256<float> x, Vector256<float> y, float* p)
    {
        Vector256.Store(x, p);
        Vector256.Store(y, p + 8);
    }

    /// <summary>Positions a pass of <see cref="Sums1x8{TRow}"/> or <see cref="Sums2x4{TRow}"/> covers before the next
    /// values of the head: their rows (head_size values each) stay in the L1 cache for all the passes over the head.</summary>
    private const int SumsTile = 64;

    /// <summary>Eight values of up to eight queries' outputs over positions [t0, t1), carried on from what the output holds
    /// (zeros before the first positions): the same chain of fused multiply-adds however the positions are split.</summary>
    private static void Sums1x8<TRow>(Arguments a, float* w, int stride, int queries, float* output, int c, int t0, int t1) where TRow : ICacheRowFormat
    {
        int h = a.HeadSize;
        Vector256<float> a0 = Vector256.Load(output + c), a1 = Vector256.Load(output + h + c), a2 = Vector256.Load(output + 2 * h + c);
        Vector256<float> a3 = Vector256.Load(output + 3 * h + c), a4 = Vector256.Load(output + 4 * h + c);
        Vector256<float> a5 = queries > 5 ? Vector256.Load(output + 5 * h + c) : default;
        Vector256<float> a6 = queries > 6 ? Vector256.Load(output + 6 * h + c) : default;
        Vector256<float> a7 = queries > 7 ? Vector256.Load(output + 7 * h + c) : default;
        float* w1 = Query(w, 1, queries, stride), w2 = Query(w, 2, queries, stride), w3 = Query(w, 3, queries, stride);
        float* w4 = Query(w, 4, queries, stride), w5 = Query(w, 5, queries, stride), w6 = Query(w, 6, queries, stride), w7 = Query(w, 7, queries, stride);
        int at = a.Offset + c;
        for (int t = t0; t < t1; t++)
        {
            var v = TRow.Load8(a.Row(t), at);
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(w[t]), v, a0); a1 = Vector256.FusedMultiplyAdd(Vector256.Create(w1[t]), v, a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Create(w2[t]), v, a2); a3 = Vector256.FusedMultiplyAdd(Vector256.Create(w3[t]), v, a3);
            a4 = Vector256.FusedMultiplyAdd(Vector256.Create(w4[t]), v, a4); a5 = Vector256.FusedMultiplyAdd(Vector256.Create(w5[t]), v, a5);
            a6 = Vector256.FusedMultiplyAdd(Vector256.Create(w6[t]), v, a6); a7 = Vector256.FusedMultiplyAdd(Vector256.Create(w7[t]), v, a7);
        }
        Vector256.Store(a0, output + c);
        Vector256.Store(a1, output + h + c);
        Vector256.Store(a2, output + 2 * h + c);
        Vector256.Store(a3, output + 3 * h + c);
        Vector256.Store(a4, output + 4 * h + c);
        if (queries > 5) Vector256.Store(a5, output + 5 * h + c);
        if (queries > 6) Vector256.Store(a6, output + 6 * h + c);
        if (queries > 7) Vector256.Store(a7, output + 7 * h + c);
    }

    /// <summary>Eight values of one query's output from four accumulators by t mod 4, added as (a0 + a1) + (a2 + a3).</summary>
    private static void SumsInterleaved<TRow>(Arguments a, float* w, float* output, int c) where TRow : ICacheRowFormat
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int at = a.Offset + c, t = 0;
        for (; t + 4 <= a.N; t += 4)
        {
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(w[t]), TRow.Load8(a.Row(t), at), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Create(w[t + 1]), TRow.Load8(a.Row(t + 1), at), a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Create(w[t + 2]), TRow.Load8(a.Row(t + 2), at), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Create(w[t + 3]), TRow.Load8(a.Row(t + 3), at), a3);
        }
        for (; t < a.N; t++)
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(w[t]), TRow.Load8(a.Row(t), at), a0);
        Vector256.Store((a0 + a1) + (a2 + a3), output + c);
    }
}
