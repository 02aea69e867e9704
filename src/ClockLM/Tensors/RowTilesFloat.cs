using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Tiles for F32, F16 and BF16 weights on AVX2. F32 rows run as <see cref="F32MatVec"/> does for one vector, a block
/// of rows at a time for every vector. F16 and BF16: each weight row is widened to floats once (exactly) and multiplied
/// with three vectors at a time. For every (row, vector) the float operations are those of
/// <see cref="FloatDots.F32x256"/>: four lane accumulators fed by fused multiply-adds over 32 values a step, then
/// eight-value steps into the first, their sum ((a0 + a1) + (a2 + a3)) reduced, plus the scalar tail. Half16x256
/// does the same on the widened values, so F16 and BF16 rows agree with MatVec too.
/// </summary>
internal static unsafe class FloatTiles
{
    private const int RowsPerBlock = 4;
    [ThreadStatic] private static float[]? _scratch;

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
        float* rows = null;
        float[]? scratch = null;
        if (job.Type != GgmlType.F32)
        {
            scratch = _scratch;
            if (scratch is null || scratch.Length < RowsPerBlock * n)
                _scratch = scratch = GC.AllocateUninitializedArray<float>(RowsPerBlock * n, pinned: true);
            rows = (float*)Unsafe.AsPointer(ref scratch[0]);
        }
        for (int r0 = start; r0 < end; r0 += RowsPerBlock)
        {
            int r1 = Math.Min(r0 + RowsPerBlock, end);
            float* w0;
            if (job.Type == GgmlType.F32) w0 = (float*)(job.Weights + (long)r0 * job.RowBytes);
            else
            {
                for (int r = r0; r < r1; r++) WidenRow(job.Type, (ushort*)(job.Weights + (long)r * job.RowBytes), rows + (long)(r - r0) * n, n);
                w0 = rows;
            }
            int t = 0;
            for (; t + 3 <= count; t += 3)
            {
                float* x = job.X + (long)t * n;
                for (int r = r0; r < r1; r++)
                {
                    float* y = job.Y + (long)t * job.Rows + r;
                    Dot3(w0 + (long)(r - r0) * n, x, x + n, x + 2 * n, n, y, job.Rows);
                }
            }
            for (; t < count; t++)
                for (int r = r0; r < r1; r++)
                    job.Y[(long)t * job.Rows + r] = FloatDots.F32x256(w0 + (long)(r - r0) * n, job.X + (long)t * n, n);
        }
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
        for (; i < n; i++) w[i] = (float)BitConverter.UInt16BitsToHalf(h[i]);
    }

    /// <summary>Row w times vectors x0, x1, x2 (n values each), results into y[0], y[stride], y[2 stride].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot3(float* w, float* x0, float* x1, float* x2, int n, float* y, int stride)
    {
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            var w0 = Vector256.Load(w + i);
            a00 = Vector256.FusedMultiplyAdd(w0, Vector256.Load(x0 + i), a00);
            a10 = Vector256.FusedMultiplyAdd(w0, Vector256.Load(x1 + i), a10);
            a20 = Vector256.FusedMultiplyAdd(w0, Vector256.Load(x2 + i), a20);
            var w1 = Vector256.Load(w + i + 8);
            a01 = Vector256.FusedMultiplyAdd(w1, Vector256.Load(x0 + i + 8), a01);
            a11 = Vector256.FusedMultiplyAdd(w1, Vector256.Load(x1 + i + 8), a11);
            a21 = Vector256.FusedMultiplyAdd(w1, Vector256.Load(x2 + i + 8), a21);
            var w2 = Vector256.Load(w + i + 16);
            a02 = Vector256.FusedMultiplyAdd(w2, Vector256.Load(x0 + i + 16), a02);
            a12 = Vector256.FusedMultiplyAdd(w2, Vector256.Load(x1 + i + 16), a12);
            a22 = Vector256.FusedMultiplyAdd(w2, Vector256.Load(x2 + i + 16), a22);
            var w3 = Vector256.Load(w + i + 24);
            a03 = Vector256.FusedMultiplyAdd(w3, Vector256.Load(x0 + i + 24), a03);
            a13 = Vector256.FusedMultiplyAdd(w3, Vector256.Load(x1 + i + 24), a13);
            a23 = Vector256.FusedMultiplyAdd(w3, Vector256.Load(x2 + i + 24), a23);
        }
        for (; i + 8 <= n; i += 8)
        {
            var w0 = Vector256.Load(w + i);
            a00 = Vector256.FusedMultiplyAdd(w0, Vector256.Load(x0 + i), a00);
            a10 = Vector256.FusedMultiplyAdd(w0, Vector256.Load(x1 + i), a10);
            a20 = Vector256.FusedMultiplyAdd(w0, Vector256.Load(x2 + i), a20);
        }
        y[0] = Vector256.Sum((a00 + a01) + (a02 + a03)) + Tail(w, x0, i, n);
        y[stride] = Vector256.Sum((a10 + a11) + (a12 + a13)) + Tail(w, x1, i, n);
        y[2 * stride] = Vector256.Sum((a20 + a21) + (a22 + a23)) + Tail(w, x2, i, n);
    }

    private static float Tail(float* w, float* x, int from, int n)
    {
        float s = 0;
        for (int i = from; i < n; i++) s += w[i] * x[i];
        return s;
    }
}
