using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// F32 weights times a float vector on the 256-bit path, eight rows at a time: each 8-column chunk of x is loaded once
/// for the eight rows, every row's products accumulate lane-wise with fused multiply-adds (the last, partial chunk
/// loaded under a mask), and the eight rows' lane sums are reduced together (<see cref="LaneSums.Of8"/>). A row's
/// result depends only on its own values, not on which rows share its group or how a pool splits the rows; it differs
/// from the scalar reference by summation order only. For the small matrices of tiny models (64 columns) this does
/// the work of eight per-row dot-product calls in one pass.
/// </summary>
internal static unsafe class F32MatVec
{
    /// <summary>y[r] = W[r, :] · x for rows [start, end); rows lie <paramref name="rowBytes"/> apart from <paramref name="weights"/>.</summary>
    public static void Rows(byte* weights, int rowBytes, int cols, float* x, float* y, int start, int end)
    {
        int full = cols & ~7;
        // Lanes 0 .. cols mod 8 - 1 of the last chunk are loaded; the others read as zero.
        var mask = Vector256.GreaterThan(Vector256.Create(cols - full), Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7)).AsSingle();
        int r = start;
        for (; r + 8 <= end; r += 8)
            Vector256.Store(Eight(weights + (long)r * rowBytes, rowBytes, 7L * rowBytes, cols, full, mask, x), y + r);
        if (r == end) return;
        // The last rows: missing ones repeat the last row (valid memory); their lanes are dropped.
        int left = end - r;
        byte* w = weights + (long)r * rowBytes;
        var last = Eight(w, rowBytes, (long)(left - 1) * rowBytes, cols, full, mask, x);
        for (int j = 0; j < left; j++) y[r + j] = last[j];
    }

    /// <summary>The dot products of rows w + min(j·rowBytes, lastOffset) (j = 0..7) with x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Eight(byte* w, long rowBytes, long lastOffset, int cols, int full, Vector256<float> mask, float* x)
    {
        float* w0 = (float*)w;
        float* w1 = (float*)(w + Math.Min(rowBytes, lastOffset));
        float* w2 = (float*)(w + Math.Min(2 * rowBytes, lastOffset));
        float* w3 = (float*)(w + Math.Min(3 * rowBytes, lastOffset));
        float* w4 = (float*)(w + Math.Min(4 * rowBytes, lastOffset));
        float* w5 = (float*)(w + Math.Min(5 * rowBytes, lastOffset));
        float* w6 = (float*)(w + Math.Min(6 * rowBytes, lastOffset));
        float* w7 = (float*)(w + Math.Min(7 * rowBytes, lastOffset));
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        int c = 0;
        for (; c < full; c += 8)
        {
            var xv = Vector256.Load(x + c);
            a0 = Vector256.FusedMultiplyAdd(Vector256.Load(w0 + c), xv, a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Load(w1 + c), xv, a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Load(w2 + c), xv, a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Load(w3 + c), xv, a3);
            a4 = Vector256.FusedMultiplyAdd(Vector256.Load(w4 + c), xv, a4);
            a5 = Vector256.FusedMultiplyAdd(Vector256.Load(w5 + c), xv, a5);
            a6 = Vector256.FusedMultiplyAdd(Vector256.Load(w6 + c), xv, a6);
            a7 = Vector256.FusedMultiplyAdd(Vector256.Load(w7 + c), xv, a7);
        }
        if (c < cols)
        {
            var xv = Avx.MaskLoad(x + c, mask);
            a0 = Vector256.FusedMultiplyAdd(Avx.MaskLoad(w0 + c, mask), xv, a0);
            a1 = Vector256.FusedMultiplyAdd(Avx.MaskLoad(w1 + c, mask), xv, a1);
            a2 = Vector256.FusedMultiplyAdd(Avx.MaskLoad(w2 + c, mask), xv, a2);
            a3 = Vector256.FusedMultiplyAdd(Avx.MaskLoad(w3 + c, mask), xv, a3);
            a4 = Vector256.FusedMultiplyAdd(Avx.MaskLoad(w4 + c, mask), xv, a4);
            a5 = Vector256.FusedMultiplyAdd(Avx.MaskLoad(w5 + c, mask), xv, a5);
            a6 = Vector256.FusedMultiplyAdd(Avx.MaskLoad(w6 + c, mask), xv, a6);
            a7 = Vector256.FusedMultiplyAdd(Avx.MaskLoad(w7 + c, mask), xv, a7);
        }
        return LaneSums.Of8(a0, a1, a2, a3, a4, a5, a6, a7);
    }
}
