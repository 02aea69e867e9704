using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Tiles for 32-value quantized blocks on AVX2: one weight row times a group of vectors. For every (row, vector) the
/// float operations are those of <see cref="RowDots.Blocks32{TTerm, T}"/> with <see cref="Avx2Dots"/>: eight block
/// terms at once as (scale_w * scale_x) * isum, their two halves added into four accumulators, the remaining blocks
/// by the scalar terms, then (a0 + a1) + (a2 + a3). Only integer work that depends on the weights alone (unpacked
/// codes) and the widened weight scales are shared across the vectors.
/// </summary>
internal static unsafe class QuantizedTiles
{
    /// <summary>The eight-block step of one format: prepare the weights of blocks b..b+7, then the terms per vector.</summary>
    public interface ITile
    {
        static abstract int Stride { get; }

        /// <summary>Lane i: the term of block b + i (weights at w + i * Stride) for vector a, bit for bit TTerm.Eight.</summary>
        static abstract Vector256<float> Eight(byte* w, in Vector256<byte> n0, in Vector256<byte> n1, in Vector256<byte> n2,
            in Vector256<byte> n3, in Vector256<byte> n4, in Vector256<byte> n5, in Vector256<byte> n6, in Vector256<byte> n7,
            Vector256<float> scales, in RowDots.Act32 a, int b);

        /// <summary>The shared, weight-only part of block w's codes (4-bit formats: the unpacked codes).</summary>
        static abstract Vector256<byte> Codes(byte* w);
    }

    public static void Rows<TTile, TTerm>(in MatMulJob job, int start, int end)
        where TTile : struct, ITile where TTerm : struct, RowDots.IBlockTerm
    {
        int count = job.Count, blocks = job.Cols / 32;
        var acts = stackalloc RowDots.Act32[count];
        for (int t = 0; t < count; t++) acts[t] = new RowDots.Act32(job.Activations![t]);
        var acc = stackalloc Vector128<float>[MatMulJob.QuantizedGroup];
        for (int r0 = start; r0 < end; r0 += MatMulJob.RowBlock)
        {
            int r1 = Math.Min(r0 + MatMulJob.RowBlock, end);
            for (int t0 = 0; t0 < count; t0 += MatMulJob.QuantizedGroup)
            {
                int group = Math.Min(MatMulJob.QuantizedGroup, count - t0);
                for (int r = r0; r < r1; r++)
                    Row<TTile, TTerm>(job.Weights + (long)r * job.RowBytes, blocks, acts + t0, group, acc, job.Y + (long)t0 * job.Rows + r, job.Rows);
            }
        }
    }

    /// <summary>Row w times <paramref name="group"/> vectors; result of vector t into y[t * yStride].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Row<TTile, TTerm>(byte* w, int blocks, RowDots.Act32* acts, int group, Vector128<float>* acc, float* y, int yStride)
        where TTile : struct, ITile where TTerm : struct, RowDots.IBlockTerm
    {
        int stride = TTile.Stride;
        for (int t = 0; t < group; t++) acc[t] = Vector128<float>.Zero;
        int b = 0;
        byte* wb = w;
        for (; b + 8 <= blocks; b += 8, wb += 8 * stride)
        {
            var n0 = TTile.Codes(wb);
            var n1 = TTile.Codes(wb + stride);
            var n2 = TTile.Codes(wb + 2 * stride);
            var n3 = TTile.Codes(wb + 3 * stride);
            var n4 = TTile.Codes(wb + 4 * stride);
            var n5 = TTile.Codes(wb + 5 * stride);
            var n6 = TTile.Codes(wb + 6 * stride);
            var n7 = TTile.Codes(wb + 7 * stride);
            var scales = HalfScales(wb, stride);
            for (int t = 0; t < group; t++)
            {
                var term = TTile.Eight(wb, n0, n1, n2, n3, n4, n5, n6, n7, scales, acts[t], b);
                var s = acc[t] + term.GetLower();
                acc[t] = s + term.GetUpper();
            }
        }
        for (int t = 0; t < group; t++)
            y[t * yStride] = RowDots.FinishBlocks32<TTerm, Avx2Dots>(wb, acts[t], b, blocks, acc[t][0], acc[t][1], acc[t][2], acc[t][3]);
    }

    /// <summary>The f16 block scales at w, w + stride, ..., w + 7 stride as floats (exact: every half is a float).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> HalfScales(byte* w, int stride)
    {
        var offsets = Vector256.Create(0, stride, 2 * stride, 3 * stride, 4 * stride, 5 * stride, 6 * stride, 7 * stride);
        var h = Avx2.GatherVector256((int*)w, offsets, 1).AsUInt32() & Vector256.Create(0xffffu);
        return HalfWidening.Widen(h);
    }

    /// <summary>The 16 sums of adjacent products q[2i] x[2i] + q[2i+1] x[2i+1] of a block of 4-bit codes (each at most 2 * 15 * 127 = 3810 in magnitude).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> AdjacentSums(Vector256<byte> codes, sbyte* x) => Avx2.MultiplyAddAdjacent(codes, Vector256.Load(x));

    /// <summary>
    /// Lane i: the total of block i's 16 pair sums, for eight blocks of 4-bit codes. Three rounds of 16-bit
    /// horizontal adds leave, in each 128-bit half, one sum of eight pairs per block (at most 8 * 3810 = 30480, so
    /// 16 bits cannot overflow), in block order; the two halves are widened and added. Exact integers, so the
    /// totals equal <see cref="Avx2Dots.Sums8"/> over the 32-bit parts, with half the multiplies (no vpmaddwd per block).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Sums8U4(Vector256<short> p0, Vector256<short> p1, Vector256<short> p2, Vector256<short> p3,
        Vector256<short> p4, Vector256<short> p5, Vector256<short> p6, Vector256<short> p7)
    {
        var h0123 = Avx2.HorizontalAdd(Avx2.HorizontalAdd(p0, p1), Avx2.HorizontalAdd(p2, p3));
        var h4567 = Avx2.HorizontalAdd(Avx2.HorizontalAdd(p4, p5), Avx2.HorizontalAdd(p6, p7));
        var h = Avx2.HorizontalAdd(h0123, h4567);
        return Avx2.ConvertToVector256Int32(h.GetLower()) + Avx2.ConvertToVector256Int32(h.GetUpper());
    }

    /// <summary>Q4_0: 16 bytes of 4-bit codes after the scale, unpacked once per row block; term dw * dx * (Σ q x - 8 Σ x).</summary>
    public readonly struct Q4_0Tile : ITile
    {
        public static int Stride => 18;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Codes(byte* w)
        {
            var q = Vector128.Load(w + 2);
            return Vector256.Create(q & Vector128.Create((byte)0x0F), Vector128.ShiftRightLogical(q, 4));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Eight(byte* w, in Vector256<byte> n0, in Vector256<byte> n1, in Vector256<byte> n2,
            in Vector256<byte> n3, in Vector256<byte> n4, in Vector256<byte> n5, in Vector256<byte> n6, in Vector256<byte> n7,
            Vector256<float> scales, in RowDots.Act32 a, int b)
        {
            sbyte* x = a.Qs + 32 * b;
            var isum = Sums8U4(AdjacentSums(n0, x), AdjacentSums(n1, x + 32), AdjacentSums(n2, x + 64), AdjacentSums(n3, x + 96),
                AdjacentSums(n4, x + 128), AdjacentSums(n5, x + 160), AdjacentSums(n6, x + 192), AdjacentSums(n7, x + 224))
                - Vector256.ShiftLeft(Vector256.Load(a.Sum + b), 3);
            return scales * Vector256.Load(a.D + b) * Vector256.ConvertToSingle(isum);
        }
    }

    /// <summary>Q8_0: signed bytes, used as they are (nothing to unpack); term dw * dx * Σ q x.</summary>
    public readonly struct Q8_0Tile : ITile
    {
        public static int Stride => 34;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Codes(byte* w) => default;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Eight(byte* w, in Vector256<byte> n0, in Vector256<byte> n1, in Vector256<byte> n2,
            in Vector256<byte> n3, in Vector256<byte> n4, in Vector256<byte> n5, in Vector256<byte> n6, in Vector256<byte> n7,
            Vector256<float> scales, in RowDots.Act32 a, int b)
        {
            sbyte* x = a.Qs + 32 * b;
            sbyte* q = (sbyte*)w + 2;
            var isum = Avx2Dots.Sums8(
                Avx2Dots.PartsS8(q, x), Avx2Dots.PartsS8(q + 34, x + 32),
                Avx2Dots.PartsS8(q + 68, x + 64), Avx2Dots.PartsS8(q + 102, x + 96),
                Avx2Dots.PartsS8(q + 136, x + 128), Avx2Dots.PartsS8(q + 170, x + 160),
                Avx2Dots.PartsS8(q + 204, x + 192), Avx2Dots.PartsS8(q + 238, x + 224));
            return scales * Vector256.Load(a.D + b) * Vector256.ConvertToSingle(isum);
        }
    }
}
