using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Tiles for F32, F16 and BF16 weights on AVX2. F32 rows run as <see cref="F32MatVec"/> does for one vector, a block
/// of rows at a time for every vector. F16 and BF16: a block of rows is widened to floats once (exactly); pairs of its
/// rows are multiplied with groups of three vectors (<see cref="Tile2x3"/>), 512 columns at a time so the block's
/// columns stay in the first-level cache while every group passes over them; a row or vectors left over repeat the
/// last one to fill a pair or group. For every (row, vector) the float operations are those of
/// <see cref="FloatDots.F32x256"/>: four lane accumulators fed by fused multiply-adds over 32 values a step, then
/// eight-value steps into the first, their sum ((a0 + a1) + (a2 + a3)) reduced, plus the scalar tail. Half16x256
/// does the same on the widened values, so F16 and BF16 rows agree with MatVec too.
/// </summary>
internal static unsafe class FloatTiles
{
    private const int RowsPerBlock = 8;
    /// <summary>Columns one pass of the row-pair tiles covers (a multiple of 32): 2 KB of each row and vector.</summary>
    private const int ColumnBlock = 512;
    [ThreadStatic] private static float[]? _scratch;
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
        int stride = (n + 15) & ~15;
        stride += (128 - stride % 1024 + 1024) % 1024;
        var scratch = _scratch;
        if (scratch is null || scratch.Length < RowsPerBlock * stride + 16)
            _scratch = scratch = GC.AllocateUninitializedArray<float>(RowsPerBlock * stride + 16, pinned: true);
        float* rows = (float*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
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
            for (int r = r0; r < r1; r++) WidenRow(job.Type, (ushort*)(job.Weights + (long)r * job.RowBytes), rows + (long)(r - r0) * stride, n);
            // Pairs of rows times groups of three vectors, a block of columns at a time so the block's rows stay in the
            // first-level cache while every group passes; the tiles' accumulators wait in memory between blocks.
            new Span<Vector256<float>>(state0, groups * pairs * 24).Clear();
            for (int c0 = 0; ; c0 += ColumnBlock)
            {
                int c1 = Math.Min(c0 + ColumnBlock, m);
                for (int g = 0; g < groups; g++)
                {
                    float* x0 = job.X + (long)GroupVector(g, 0, count) * n, x1 = job.X + (long)GroupVector(g, 1, count) * n, x2 = job.X + (long)GroupVector(g, 2, count) * n;
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
                        float* x = job.X + (long)t * n, y = job.Y + (long)t * job.Rows + r0;
                        y[a] = Finish(s, v, rows + (long)a * stride, x, n);
                        y[b] = Finish(s, 3 + v, rows + (long)b * stride, x, n);
                    }
                }
        }
    }

    /// <summary>Vector v of group g, the last one repeated to fill the last group.</summary>
    private static int GroupVector(int g, int v, int count) => Math.Min(3 * g + v, count - 1);

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
