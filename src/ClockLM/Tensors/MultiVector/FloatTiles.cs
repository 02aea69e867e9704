using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Tiles for F32, F16 and BF16 weights on AVX2. F32 rows run as <see cref="F32MatVec"/> does for one vector, a block
/// of rows at a time for every vector. F16 and BF16: a block of rows is widened to floats once (exactly), and the
/// vectors are copied once per product to rows whose addresses do not fall on the same first-level cache sets (a
/// model's widths are multiples of 4 KB apart, which made each group's vectors evict each other); then pairs of the
/// block's rows are multiplied with groups of three vectors (<see cref="Tile2x3"/>), 512 columns at a time so the
/// block's columns stay in the first-level cache while every group passes over them; a row or vectors left over repeat
/// the last one to fill a pair or group. Where AVX-512 runs (<see cref="MatMulJob.Wide"/>) all eight rows of the block
/// go with each group instead (<see cref="Tile8x3"/>, 24 accumulators of 512 bits in the 32 registers), 1024 columns at
/// a time. For every (row, vector) the float operations are those of <see cref="FloatDots.F32x256"/>: four lane
/// accumulators fed by fused multiply-adds over 32 values a step, then eight-value steps into the first, their sum
/// ((a0 + a1) + (a2 + a3)) reduced, plus the scalar tail; a 512-bit accumulator holds two of them (a0 and a1, or a2
/// and a3) lane for lane. Half16x256 does the same on the widened values, so F16 and BF16 rows agree with MatVec too.
/// </summary>
internal static unsafe class FloatTiles
{
    private const int RowsPerBlock = 8;
    /// <summary>Columns one pass of the row-pair tiles covers (a multiple of 32): 2 KB of each row and vector.</summary>
    private const int ColumnBlock = 512;
    /// <summary>Columns one pass of the eight-row tiles covers: 4 KB of each row and vector (32 KB of rows).</summary>
    private const int WideColumnBlock = 1024;
    [ThreadStatic] private static float[]? _scratch;
    [ThreadStatic] private static float[]? _vectors;
    [ThreadStatic] private static Vector256<float>[]? _states;

    public static void Rows(in MatMulJob job, int start, int end)
    {
        int n = job.Cols, count = job.Count;
        if (job.Type == GgmlType.F32)
        {
            // F32 rows as MatVec computes them (F32MatVec, eight rows per pass, whose results do not depend on the
            // grouping), a block of rows at a time so the block stays in cache while every vector passes over it.
            const int block = 16;
            for (int r0 = start; r0 < end; r0 += block)
                for (int t = 0; t < count; t++)
                    F32MatVec.Rows(job.Weights, job.RowBytes, n, job.X + (long)t * n, job.Y + (long)t * job.Rows, r0, Math.Min(r0 + block, end));
            return;
        }
        // Widened rows lie a multiple of 16 floats apart from a 64-byte boundary, so the tile passes read whole lines,
        // and 128 floats past a multiple of 4 KB: the first-level cache maps addresses 4 KB apart to the same sets, and
        // eight rows' column blocks at the same offsets would fill every way of theirs, leaving none for the vectors.
        int stride = Padded(n, 128);
        var scratch = _scratch;
        if (scratch is null || scratch.Length < RowsPerBlock * stride + 16)
            _scratch = scratch = GC.AllocateUninitializedArray<float>(RowsPerBlock * stride + 16, pinned: true);
        float* rows = (float*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
        // The vectors, 80 floats past a multiple of 4 KB apart (the rows are 128 past).
        int xStride = Padded(n, 80);
        var copies = _vectors;
        if (copies is null || copies.Length < (long)count * xStride + 16)
            _vectors = copies = GC.AllocateUninitializedArray<float>(count * xStride + 16, pinned: true);
        float* vectors = (float*)(((nint)Unsafe.AsPointer(ref copies[0]) + 63) & ~(nint)63);
        for (int t = 0; t < count; t++)
            Buffer.MemoryCopy(job.X + (long)t * n, vectors + (long)t * xStride, (long)n * sizeof(float), (long)n * sizeof(float));
        if (job.Wide)
        {
            EightRowTiles(job, start, end, rows, stride, vectors, xStride);
            return;
        }
        // A last vector or row without a full group or pair repeats the group's (pair's) last one: the repeat computes
        // the same result again and writes it to the same place.
        int groups = (count + 2) / 3, m = n & ~31;
        var states = _states;
        if (states is null || states.Length < groups * (RowsPerBlock / 2) * 24 + 2)
            _states = states = GC.AllocateUninitializedArray<Vector256<float>>(groups * (RowsPerBlock / 2) * 24 + 2, pinned: true);
        var state0 = (Vector256<float>*)(((nint)Unsafe.AsPointer(ref states[0]) + 63) & ~(nint)63);
        for (int r0 = start; r0 < end; r0 += RowsPerBlock)
        {
            int r1 = Math.Min(r0 + RowsPerBlock, end), pairs = (r1 - r0 + 1) / 2;
            for (int r = r0; r < r1; r++) WidenRow(job, r, rows + (long)(r - r0) * stride);
            // Pairs of rows times groups of three vectors, a block of columns at a time so the block's rows stay in the
            // first-level cache while every group passes; the tiles' accumulators wait in memory between blocks.
            new Span<Vector256<float>>(state0, groups * pairs * 24).Clear();
            for (int c0 = 0; ; c0 += ColumnBlock)
            {
                int c1 = Math.Min(c0 + ColumnBlock, m);
                for (int g = 0; g < groups; g++)
                {
                    float* x0 = vectors + (long)GroupVector(g, 0, count) * xStride, x1 = vectors + (long)GroupVector(g, 1, count) * xStride, x2 = vectors + (long)GroupVector(g, 2, count) * xStride;
                    for (int p = 0; p < pairs; p++)
                    {
                        int a = 2 * p, b = Math.Min(a + 1, r1 - r0 - 1);
                        Tile2x3(rows + (long)a * stride, rows + (long)b * stride, x0, x1, x2, c0, c1, m, n, state0 + (g * pairs + p) * 24);
                    }
                }
                if (c1 == m) break;
            }
            for (int g = 0; g < groups; g++)
                for (int p = 0; p < pairs; p++)
                {
                    int a = 2 * p, b = Math.Min(a + 1, r1 - r0 - 1);
                    var s = state0 + (g * pairs + p) * 24;
                    for (int v = 0; v < 3; v++)
                    {
                        int t = GroupVector(g, v, count);
                        float* x = vectors + (long)t * xStride, y = job.Y + (long)t * job.Rows + r0;
                        y[a] = Finish(s, v, rows + (long)a * stride, x, n);
                        y[b] = Finish(s, 3 + v, rows + (long)b * stride, x, n);
                    }
                }
        }
    }

    /// <summary>A row length of at least n floats, a multiple of 16 (64 bytes), <paramref name="offset"/> floats past a
    /// multiple of 1024 (4 KB): rows that far apart fall on different first-level cache sets.</summary>
    private static int Padded(int n, int offset)
    {
        int stride = (n + 15) & ~15;
        return stride + (offset - stride % 1024 + 1024) % 1024;
    }

    /// <summary>
    /// The AVX-512 form of the F16/BF16 tiles: each block of eight widened rows (the last row repeated to fill one) times
    /// every group of three vectors (<see cref="Tile8x3"/>), a block of 1024 columns at a time; each (row, vector) keeps
    /// two 512-bit accumulators, lanes 0-15 and 16-31 of every 32-value step, that wait in memory between blocks.
    /// </summary>
    private static void EightRowTiles(in MatMulJob job, int start, int end, float* rows, int stride, float* vectors, int xStride)
    {
        int n = job.Cols, count = job.Count, groups = (count + 2) / 3, m = n & ~31;
        var states = _states;
        if (states is null || states.Length < groups * 96 + 4)
            _states = states = GC.AllocateUninitializedArray<Vector256<float>>(groups * 96 + 4, pinned: true);
        var state0 = (Vector512<float>*)(((nint)Unsafe.AsPointer(ref states[0]) + 63) & ~(nint)63);
        for (int r0 = start; r0 < end; r0 += RowsPerBlock)
        {
            int r1 = Math.Min(r0 + RowsPerBlock, end);
            for (int r = r0; r < r1; r++) WidenRow(job, r, rows + (long)(r - r0) * stride);
            for (int r = r1; r < r0 + RowsPerBlock; r++) new Span<float>(rows + (long)(r1 - 1 - r0) * stride, n).CopyTo(new Span<float>(rows + (long)(r - r0) * stride, n));
            new Span<Vector512<float>>(state0, groups * 48).Clear();
            for (int c0 = 0; ; c0 += WideColumnBlock)
            {
                int c1 = Math.Min(c0 + WideColumnBlock, m);
                for (int g = 0; g < groups; g++)
                {
                    float* x0 = vectors + (long)GroupVector(g, 0, count) * xStride, x1 = vectors + (long)GroupVector(g, 1, count) * xStride, x2 = vectors + (long)GroupVector(g, 2, count) * xStride;
                    var s = state0 + g * 48;
                    Tile8x3(rows, stride, x0, x1, x2, c0, c1, s);
                    if (c1 == m) WideTail(rows, stride, x0, x1, x2, m, n, s);
                    Tile8x3(rows, stride, x0, x1, x2, c0 + 16, c1, s + 24);
                }
                if (c1 == m) break;
            }
            for (int g = 0; g < groups; g++)
            {
                var s = state0 + g * 48;
                for (int v = 0; v < 3; v++)
                {
                    int t = GroupVector(g, v, count);
                    float* x = vectors + (long)t * xStride, y = job.Y + (long)t * job.Rows + r0;
                    for (int j = 0; j < r1 - r0; j++)
                    {
                        var a01 = s[j * 3 + v];
                        var a23 = s[24 + j * 3 + v];
                        y[j] = Vector256.Sum((a01.GetLower() + a01.GetUpper()) + (a23.GetLower() + a23.GetUpper())) + Tail(rows + (long)j * stride, x, n & ~7, n);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Eight rows (<paramref name="stride"/> floats apart from <paramref name="w"/>) times vectors x0, x1 and x2 over
    /// columns [from, to), every 32 one 16-value step (from = c0 for lanes 0-15 of the steps, c0 + 16 for lanes 16-31),
    /// continuing the 24 accumulators at <paramref name="s"/> (row j, vector v at j * 3 + v).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile8x3(float* w, int stride, float* x0, float* x1, float* x2, int from, int to, Vector512<float>* s)
    {
        float* w1 = w + stride, w2 = w1 + stride, w3 = w2 + stride, w4 = w3 + stride, w5 = w4 + stride, w6 = w5 + stride, w7 = w6 + stride;
        Vector512<float> a0 = s[0], a1 = s[1], a2 = s[2], b0 = s[3], b1 = s[4], b2 = s[5], c0 = s[6], c1 = s[7], c2 = s[8];
        Vector512<float> d0 = s[9], d1 = s[10], d2 = s[11], e0 = s[12], e1 = s[13], e2 = s[14], f0 = s[15], f1 = s[16], f2 = s[17];
        Vector512<float> g0 = s[18], g1 = s[19], g2 = s[20], h0 = s[21], h1 = s[22], h2 = s[23];
        for (int i = from; i < to; i += 32)
        {
            var v0 = Vector512.Load(x0 + i);
            var v1 = Vector512.Load(x1 + i);
            var v2 = Vector512.Load(x2 + i);
            var u = Vector512.Load(w + i);
            a0 = Avx512F.FusedMultiplyAdd(u, v0, a0); a1 = Avx512F.FusedMultiplyAdd(u, v1, a1); a2 = Avx512F.FusedMultiplyAdd(u, v2, a2);
            u = Vector512.Load(w1 + i);
            b0 = Avx512F.FusedMultiplyAdd(u, v0, b0); b1 = Avx512F.FusedMultiplyAdd(u, v1, b1); b2 = Avx512F.FusedMultiplyAdd(u, v2, b2);
            u = Vector512.Load(w2 + i);
            c0 = Avx512F.FusedMultiplyAdd(u, v0, c0); c1 = Avx512F.FusedMultiplyAdd(u, v1, c1); c2 = Avx512F.FusedMultiplyAdd(u, v2, c2);
            u = Vector512.Load(w3 + i);
            d0 = Avx512F.FusedMultiplyAdd(u, v0, d0); d1 = Avx512F.FusedMultiplyAdd(u, v1, d1); d2 = Avx512F.FusedMultiplyAdd(u, v2, d2);
            u = Vector512.Load(w4 + i);
            e0 = Avx512F.FusedMultiplyAdd(u, v0, e0); e1 = Avx512F.FusedMultiplyAdd(u, v1, e1); e2 = Avx512F.FusedMultiplyAdd(u, v2, e2);
            u = Vector512.Load(w5 + i);
            f0 = Avx512F.FusedMultiplyAdd(u, v0, f0); f1 = Avx512F.FusedMultiplyAdd(u, v1, f1); f2 = Avx512F.FusedMultiplyAdd(u, v2, f2);
            u = Vector512.Load(w6 + i);
            g0 = Avx512F.FusedMultiplyAdd(u, v0, g0); g1 = Avx512F.FusedMultiplyAdd(u, v1, g1); g2 = Avx512F.FusedMultiplyAdd(u, v2, g2);
            u = Vector512.Load(w7 + i);
            h0 = Avx512F.FusedMultiplyAdd(u, v0, h0); h1 = Avx512F.FusedMultiplyAdd(u, v1, h1); h2 = Avx512F.FusedMultiplyAdd(u, v2, h2);
        }
        s[0] = a0; s[1] = a1; s[2] = a2; s[3] = b0; s[4] = b1; s[5] = b2; s[6] = c0; s[7] = c1; s[8] = c2;
        s[9] = d0; s[10] = d1; s[11] = d2; s[12] = e0; s[13] = e1; s[14] = e2; s[15] = f0; s[16] = f1; s[17] = f2;
        s[18] = g0; s[19] = g1; s[20] = g2; s[21] = h0; s[22] = h1; s[23] = h2;
    }

    /// <summary>The 8-value steps after the last 32 (from <paramref name="from"/> to n) of every row and vector, into the
    /// first lane accumulator: the lower half of each lanes 0-15 accumulator.</summary>
    private static void WideTail(float* w, int stride, float* x0, float* x1, float* x2, int from, int n, Vector512<float>* s)
    {
        if (from + 8 > n) return;
        for (int j = 0; j < RowsPerBlock; j++)
            for (int v = 0; v < 3; v++)
            {
                float* x = v == 0 ? x0 : v == 1 ? x1 : x2, row = w + (long)j * stride;
                var a0 = s[j * 3 + v].GetLower();
                for (int i = from; i + 8 <= n; i += 8) a0 = Vector256.FusedMultiplyAdd(Vector256.Load(row + i), Vector256.Load(x + i), a0);
                s[j * 3 + v] = s[j * 3 + v].WithLower(a0);
            }
    }

    /// <summary>Vector v of group g, the last one repeated to fill the last group.</summary>
    private static int GroupVector(int g, int v, int count) => Math.Min(3 * g + v, count - 1);

    /// <summary>Row r of the job's F16 or BF16 weights as floats into w, from the file layout or the panels
    /// (<see cref="HalfPanels"/>), piece by piece: each value widens on its own, so the floats are the same.</summary>
    private static void WidenRow(in MatMulJob job, int r, float* w)
    {
        int n = job.Cols;
        if (!job.Panels)
        {
            WidenRow(job.Type, (ushort*)(job.Weights + (long)r * job.RowBytes), w, n);
            return;
        }
        for (int p = 0; p < HalfPanels.Count(n); p++)
            WidenRow(job.Type, HalfPanels.Base(job.Weights, job.Rows, n, r, p) + p * HalfPanels.Columns, w + p * HalfPanels.Columns, HalfPanels.Width(n, p));
    }

    /// <summary>n halves (or bfloat16s) at h as floats into w.</summary>
    private static void WidenRow(GgmlType type, ushort* h, float* w, int n)
    {
        int i = 0;
        if (type == GgmlType.BF16)
        {
            for (; i + 8 <= n; i += 8) Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(h + i).AsUInt32(), 16).AsSingle().Store(w + i);
            for (; i < n; i++) w[i] = Dequantize.BFloat16ToSingle(h[i]);
            return;
        }
        for (; i + 8 <= n; i += 8) HalfWidening.Widen(Avx2.ConvertToVector256Int32(h + i).AsUInt32()).Store(w + i);
        for (; i < n; i++) w[i] = HalfWidening.ToSingle(h[i]);
    }

    /// <summary>
    /// Rows w0 and w1 times vectors x0, x1 and x2 (n values each) over columns [c0, c1), a stretch of the 32-value steps
    /// (which end at m), continuing the 24 accumulators at <paramref name="state"/>. Twelve fit the
    /// registers, not the 24 that two rows by three vectors by four lane accumulators need, so the columns are passed
    /// twice: first the accumulators of the first two 8-value steps of every 32 (and, after the last 32, the 8-value
    /// steps that go to the first), then those of the last two. Each accumulator still sees its values in the order
    /// <see cref="FloatDots.F32x256"/> adds them, and each pass reads whole lines.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile2x3(float* w0, float* w1, float* x0, float* x1, float* x2, int c0, int c1, int m, int n, Vector256<float>* state)
    {
        Pass(w0, w1, x0, x1, x2, c0, c1, state);
        if (c1 == m) Tail(w0, w1, x0, x1, x2, c1, n, state);
        Pass(w0, w1, x0, x1, x2, c0 + 16, c1, state + 12);
    }

    /// <summary>One pass of <see cref="Tile2x3"/>: from column <paramref name="from"/> on, every 32, two 8-value steps
    /// into the twelve accumulators at <paramref name="s"/> (rows by vectors for the first step, then for the second).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pass(float* w0, float* w1, float* x0, float* x1, float* x2, int from, int to, Vector256<float>* s)
    {
        Vector256<float> a00 = s[0], a01 = s[1], a02 = s[2], a10 = s[3], a11 = s[4], a12 = s[5];
        Vector256<float> b00 = s[6], b01 = s[7], b02 = s[8], b10 = s[9], b11 = s[10], b12 = s[11];
        for (int i = from; i < to; i += 32)
        {
            var u = Vector256.Load(w0 + i);
            var v = Vector256.Load(w1 + i);
            var xv = Vector256.Load(x0 + i);
            a00 = Vector256.FusedMultiplyAdd(u, xv, a00);
            a10 = Vector256.FusedMultiplyAdd(v, xv, a10);
            xv = Vector256.Load(x1 + i);
            a01 = Vector256.FusedMultiplyAdd(u, xv, a01);
            a11 = Vector256.FusedMultiplyAdd(v, xv, a11);
            xv = Vector256.Load(x2 + i);
            a02 = Vector256.FusedMultiplyAdd(u, xv, a02);
            a12 = Vector256.FusedMultiplyAdd(v, xv, a12);
            u = Vector256.Load(w0 + i + 8);
            v = Vector256.Load(w1 + i + 8);
            xv = Vector256.Load(x0 + i + 8);
            b00 = Vector256.FusedMultiplyAdd(u, xv, b00);
            b10 = Vector256.FusedMultiplyAdd(v, xv, b10);
            xv = Vector256.Load(x1 + i + 8);
            b01 = Vector256.FusedMultiplyAdd(u, xv, b01);
            b11 = Vector256.FusedMultiplyAdd(v, xv, b11);
            xv = Vector256.Load(x2 + i + 8);
            b02 = Vector256.FusedMultiplyAdd(u, xv, b02);
            b12 = Vector256.FusedMultiplyAdd(v, xv, b12);
        }
        s[0] = a00; s[1] = a01; s[2] = a02; s[3] = a10; s[4] = a11; s[5] = a12;
        s[6] = b00; s[7] = b01; s[8] = b02; s[9] = b10; s[10] = b11; s[11] = b12;
    }

    /// <summary>The 8-value steps after the last 32 (from <paramref name="from"/> to n), into the first six accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tail(float* w0, float* w1, float* x0, float* x1, float* x2, int from, int n, Vector256<float>* s)
    {
        Vector256<float> a00 = s[0], a01 = s[1], a02 = s[2], a10 = s[3], a11 = s[4], a12 = s[5];
        for (int i = from; i + 8 <= n; i += 8)
        {
            var u = Vector256.Load(w0 + i);
            var v = Vector256.Load(w1 + i);
            var xv = Vector256.Load(x0 + i);
            a00 = Vector256.FusedMultiplyAdd(u, xv, a00);
            a10 = Vector256.FusedMultiplyAdd(v, xv, a10);
            xv = Vector256.Load(x1 + i);
            a01 = Vector256.FusedMultiplyAdd(u, xv, a01);
            a11 = Vector256.FusedMultiplyAdd(v, xv, a11);
            xv = Vector256.Load(x2 + i);
            a02 = Vector256.FusedMultiplyAdd(u, xv, a02);
            a12 = Vector256.FusedMultiplyAdd(v, xv, a12);
        }
        s[0] = a00; s[1] = a01; s[2] = a02; s[3] = a10; s[4] = a11; s[5] = a12;
    }

    /// <summary>Result k (row k / 3, vector k mod 3) of a finished <see cref="Tile2x3"/>: ((a0 + a1) + (a2 + a3)) reduced, plus the scalar tail.</summary>
    private static float Finish(Vector256<float>* s, int k, float* w, float* x, int n) =>
        Vector256.Sum((s[k] + s[6 + k]) + (s[12 + k] + s[18 + k])) + Tail(w, x, n & ~7, n);

    private static float Tail(float* w, float* x, int from, int n)
    {
        float s = 0;
        for (int i = from; i < n; i++) s += w[i] * x[i];
        return s;
    }
}
