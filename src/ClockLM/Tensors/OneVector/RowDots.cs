using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// One weight row times the quantized activations, per weight type. The float arithmetic around the integer block
/// dots is written once here and shared by every <see cref="IBlockDots"/> implementation, so all paths agree bit for bit:
/// <list type="bullet">
/// <item>32-value blocks: the term of block b is dw * dx * isum (plus m * dx * Σqx for the formats with a min),
/// added to accumulator b mod 4; the row result is (acc0 + acc1) + (acc2 + acc3). The AVX2 path computes the terms of
/// eight blocks at once in one vector and adds its two halves into the four accumulators in block order, which is the
/// same sequence of float operations.</item>
/// <item>256-value super-blocks: one accumulator, acc += d * dx * isum - dmin * dx * msum.</item>
/// </list>
/// </summary>
internal static unsafe class RowDots
{
    /// <summary>Every f16 bit pattern as a float (256 KB, like ggml's table): block scales widen with one load.</summary>
    private static readonly float[] HalfTableArray = BuildHalfTable();
    private static readonly float* HalfTable = (float*)Unsafe.AsPointer(ref HalfTableArray[0]);

    private static float[] BuildHalfTable()
    {
        var table = GC.AllocateUninitializedArray<float>(65536, pinned: true);
        for (int h = 0; h < 65536; h++) table[h] = (float)BitConverter.UInt16BitsToHalf((ushort)h);
        return table;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float F16(byte* p) => HalfTable[*(ushort*)p];

    /// <summary>Runs rows [start, end) of the product with block dots <typeparamref name="T"/>.</summary>
    public static void Rows<T>(in MatVecJob job, int start, int end) where T : struct, IBlockDots
    {
        switch (job.Type)
        {
            // The 32-value formats run their own row loop, so the type switch and the activation pointers are read once per range.
            case GgmlType.Q8_0: Rows32<Q8_0Term, T>(job, start, end); return;
            case GgmlType.Q4_0: Rows32<Q4_0Term, T>(job, start, end); return;
            case GgmlType.Q4_1: Rows32<Q4_1Term, T>(job, start, end); return;
            case GgmlType.Q5_0: Rows32<Q5_0Term, T>(job, start, end); return;
            case GgmlType.Q5_1: Rows32<Q5_1Term, T>(job, start, end); return;
        }
        var a = job.Activations!;
        int n = job.Cols;
        for (int r = start; r < end; r++)
        {
            byte* w = job.Weights + (long)r * job.RowBytes;
            job.Y[r] = job.Type switch
            {
                GgmlType.Q4_K => Q4_K<T>(w, a, n / 256),
                GgmlType.Q5_K => Q5_K<T>(w, a, n / 256),
                GgmlType.Q6_K => Q6_K<T>(w, a, n / 256),
                _ => FloatDots.Dot(job.Type, job.Path, w, job.X, n),
            };
        }
    }

    private static void Rows32<TTerm, T>(in MatVecJob job, int start, int end)
        where TTerm : struct, IBlockTerm where T : struct, IBlockDots
    {
        var a = new Act32(job.Activations!);
        int blocks = job.Cols / 32;
        byte* w = job.Weights + (long)start * job.RowBytes;
        for (int r = start; r < end; r++, w += job.RowBytes)
            job.Y[r] = Blocks32<TTerm, T>(w, a, blocks);
    }

    /// <summary>Pointers into the 32-value activation blocks, read once per row.</summary>
    public readonly struct Act32(ActivationBlocks a, bool scaledUp = false)
    {
        public readonly sbyte* Qs = a.Qs;
        /// <summary>The block scales, or with scaledUp their values times 2^112 (<see cref="ActivationBlocks.DUp"/>).</summary>
        public readonly float* D = scaledUp ? a.DUp : a.D;
        public readonly int* Sum = a.Sum;
        public readonly float* S = a.S;
    }

    /// <summary>The float term one 32-value block adds to the row sum.</summary>
    public interface IBlockTerm
    {
        static abstract int Stride { get; }
        static abstract float Term<T>(byte* w, in Act32 a, int b) where T : struct, IBlockDots;

        /// <summary>Lane i: Term of block b + i (weights at w + i * Stride), computed with AVX2, bit for bit as <see cref="Term"/>.</summary>
        static abstract Vector256<float> Eight(byte* w, in Act32 a, int b);
    }

    /// <summary>The f16 values at p, p + stride, ..., p + 7 stride as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> F16x8(byte* p, int stride) =>
        Vector256.Create(F16(p), F16(p + stride), F16(p + 2 * stride), F16(p + 3 * stride),
            F16(p + 4 * stride), F16(p + 5 * stride), F16(p + 6 * stride), F16(p + 7 * stride));

    /// <summary>
    /// How far ahead the AVX2 row loops prefetch weights: 2 KB, which keeps enough cache lines in flight for one core
    /// to stream near memory speed (its hardware prefetcher alone falls short). Past a row's end it is the next row.
    /// </summary>
    private const int PrefetchBytes = 2048;

    /// <summary>Σ over blocks of TTerm, block b into accumulator b mod 4 (unrolled by four), then (a0 + a1) + (a2 + a3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Blocks32<TTerm, T>(byte* w, in Act32 a, int blocks)
        where TTerm : struct, IBlockTerm where T : struct, IBlockDots
    {
        int stride = TTerm.Stride;
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int b = 0;
        if (typeof(T) == typeof(Avx2Dots) && blocks >= 8)
        {
            // Terms of blocks b..b+3 go to accumulators 0..3, then b+4..b+7: the same additions as the loop below.
            var acc = Vector128<float>.Zero;
            for (; b + 8 <= blocks; b += 8, w += 8 * stride)
            {
                // Eight blocks span at most 192 bytes (Q8_0: 272), three lines (five).
                Sse.Prefetch0(w + PrefetchBytes);
                Sse.Prefetch0(w + PrefetchBytes + 64);
                Sse.Prefetch0(w + PrefetchBytes + 128);
                if (stride > 24) { Sse.Prefetch0(w + PrefetchBytes + 192); Sse.Prefetch0(w + PrefetchBytes + 256); }
                var t = TTerm.Eight(w, a, b);
                acc += t.GetLower();
                acc += t.GetUpper();
            }
            (a0, a1, a2, a3) = (acc[0], acc[1], acc[2], acc[3]);
        }
        return FinishBlocks32<TTerm, T>(w, a, b, blocks, a0, a1, a2, a3);
    }

    /// <summary>The rest of <see cref="Blocks32"/> from block <paramref name="b"/> on (weights at <paramref name="w"/>),
    /// given the four accumulators so far: one block at a time into accumulator b mod 4, then (a0 + a1) + (a2 + a3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float FinishBlocks32<TTerm, T>(byte* w, in Act32 a, int b, int blocks, float a0, float a1, float a2, float a3)
        where TTerm : struct, IBlockTerm where T : struct, IBlockDots
    {
        int stride = TTerm.Stride;
        for (; b + 4 <= blocks; b += 4, w += 4 * stride)
        {
            a0 += TTerm.Term<T>(w, a, b);
            a1 += TTerm.Term<T>(w + stride, a, b + 1);
            a2 += TTerm.Term<T>(w + 2 * stride, a, b + 2);
            a3 += TTerm.Term<T>(w + 3 * stride, a, b + 3);
        }
        if (b < blocks) a0 += TTerm.Term<T>(w, a, b);
        if (b + 1 < blocks) a1 += TTerm.Term<T>(w + stride, a, b + 1);
        if (b + 2 < blocks) a2 += TTerm.Term<T>(w + 2 * stride, a, b + 2);
        return (a0 + a1) + (a2 + a3);
    }

    // Q8_0: f16 d, int8 q[32]: dw * dx * Σ q x.
    public readonly struct Q8_0Term : IBlockTerm
    {
        public static int Stride => 34;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Term<T>(byte* w, in Act32 a, int b) where T : struct, IBlockDots =>
            F16(w) * a.D[b] * T.S8((sbyte*)(w + 2), a.Qs + 32 * b);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Eight(byte* w, in Act32 a, int b)
        {
            sbyte* x = a.Qs + 32 * b;
            var isum = Avx2Dots.Sums8(
                Avx2Dots.PartsS8((sbyte*)w + 2, x), Avx2Dots.PartsS8((sbyte*)w + 36, x + 32),
                Avx2Dots.PartsS8((sbyte*)w + 70, x + 64), Avx2Dots.PartsS8((sbyte*)w + 104, x + 96),
                Avx2Dots.PartsS8((sbyte*)w + 138, x + 128), Avx2Dots.PartsS8((sbyte*)w + 172, x + 160),
                Avx2Dots.PartsS8((sbyte*)w + 206, x + 192), Avx2Dots.PartsS8((sbyte*)w + 240, x + 224));
            return F16x8(w, 34) * Vector256.Load(a.D + b) * Vector256.ConvertToSingle(isum);
        }
    }

    // Q4_0: f16 d, 4-bit codes: dw * dx * Σ (q - 8) x = dw * dx * (Σ q x - 8 Σ x).
    public readonly struct Q4_0Term : IBlockTerm
    {
        public static int Stride => 18;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Term<T>(byte* w, in Act32 a, int b) where T : struct, IBlockDots =>
            F16(w) * a.D[b] * (T.U4(w + 2, a.Qs + 32 * b) - 8 * a.Sum[b]);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Eight(byte* w, in Act32 a, int b)
        {
            var isum = U4x8(w + 2, 18, a.Qs + 32 * b) - Vector256.ShiftLeft(Vector256.Load(a.Sum + b), 3);
            return F16x8(w, 18) * Vector256.Load(a.D + b) * Vector256.ConvertToSingle(isum);
        }
    }

    // Q5_0: f16 d, u32 fifth bits, 4-bit codes: dw * dx * (Σ q x - 16 Σ x).
    public readonly struct Q5_0Term : IBlockTerm
    {
        public static int Stride => 22;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Term<T>(byte* w, in Act32 a, int b) where T : struct, IBlockDots =>
            F16(w) * a.D[b] * (T.U5(w + 6, Unsafe.ReadUnaligned<uint>(w + 2), a.Qs + 32 * b) - 16 * a.Sum[b]);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Eight(byte* w, in Act32 a, int b)
        {
            var isum = U5x8(w + 6, w + 2, 22, a.Qs + 32 * b) - Vector256.ShiftLeft(Vector256.Load(a.Sum + b), 4);
            return F16x8(w, 22) * Vector256.Load(a.D + b) * Vector256.ConvertToSingle(isum);
        }
    }

    // Q4_1: f16 d, f16 m, 4-bit codes: dw * dx * Σ q x + m * (dx Σ x).
    public readonly struct Q4_1Term : IBlockTerm
    {
        public static int Stride => 20;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Term<T>(byte* w, in Act32 a, int b) where T : struct, IBlockDots =>
            F16(w) * a.D[b] * T.U4(w + 4, a.Qs + 32 * b) + F16(w + 2) * a.S[b];

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Eight(byte* w, in Act32 a, int b) =>
            F16x8(w, 20) * Vector256.Load(a.D + b) * Vector256.ConvertToSingle(U4x8(w + 4, 20, a.Qs + 32 * b))
            + F16x8(w + 2, 20) * Vector256.Load(a.S + b);
    }

    // Q5_1: f16 d, f16 m, u32 fifth bits, 4-bit codes.
    public readonly struct Q5_1Term : IBlockTerm
    {
        public static int Stride => 24;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Term<T>(byte* w, in Act32 a, int b) where T : struct, IBlockDots =>
            F16(w) * a.D[b] * T.U5(w + 8, Unsafe.ReadUnaligned<uint>(w + 4), a.Qs + 32 * b) + F16(w + 2) * a.S[b];

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Eight(byte* w, in Act32 a, int b) =>
            F16x8(w, 24) * Vector256.Load(a.D + b) * Vector256.ConvertToSingle(U5x8(w + 8, w + 4, 24, a.Qs + 32 * b))
            + F16x8(w + 2, 24) * Vector256.Load(a.S + b);
    }

    /// <summary>Eight 4-bit block dots (codes at qs + i * stride, activations x + 32 i) as one vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> U4x8(byte* qs, int stride, sbyte* x) => Avx2Dots.Sums8(
        Avx2Dots.PartsU4(qs, x), Avx2Dots.PartsU4(qs + stride, x + 32),
        Avx2Dots.PartsU4(qs + 2 * stride, x + 64), Avx2Dots.PartsU4(qs + 3 * stride, x + 96),
        Avx2Dots.PartsU4(qs + 4 * stride, x + 128), Avx2Dots.PartsU4(qs + 5 * stride, x + 160),
        Avx2Dots.PartsU4(qs + 6 * stride, x + 192), Avx2Dots.PartsU4(qs + 7 * stride, x + 224));

    /// <summary>Eight 5-bit block dots (codes at qs + i * stride, fifth bits in the u32 at qh + i * stride).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> U5x8(byte* qs, byte* qh, int stride, sbyte* x)
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector256<int> Part(byte* qs, byte* qh, sbyte* x) => Avx2Dots.PartsU5(qs, Unsafe.ReadUnaligned<uint>(qh), x);
        return Avx2Dots.Sums8(
            Part(qs, qh, x), Part(qs + stride, qh + stride, x + 32),
            Part(qs + 2 * stride, qh + 2 * stride, x + 64), Part(qs + 3 * stride, qh + 3 * stride, x + 96),
            Part(qs + 4 * stride, qh + 4 * stride, x + 128), Part(qs + 5 * stride, qh + 5 * stride, x + 160),
            Part(qs + 6 * stride, qh + 6 * stride, x + 192), Part(qs + 7 * stride, qh + 7 * stride, x + 224));
    }

    /// <summary>
    /// The eight 6-bit scales (into sm[0..7]) and mins (sm[8..15]) of a Q4_K/Q5_K super-block, four at a time in
    /// 32-bit words: word 0 of the packed bytes holds scales 0..3 (low 6 bits) and the top bits of scales 4..7,
    /// word 1 mins 0..3 and the top bits of mins 4..7, word 2 the low nibbles of scales 4..7 and mins 4..7.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void UnpackScales(byte* p, uint* sm)
    {
        const uint low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, low2 = 0x03030303;
        uint w0 = Unsafe.ReadUnaligned<uint>(p), w1 = Unsafe.ReadUnaligned<uint>(p + 4), w2 = Unsafe.ReadUnaligned<uint>(p + 8);
        sm[0] = w0 & low6;
        sm[1] = (w2 & low4) | (((w0 >> 6) & low2) << 4);
        sm[2] = w1 & low6;
        sm[3] = ((w2 >> 4) & low4) | (((w1 >> 6) & low2) << 4);
    }

    public static float Q4_K<T>(byte* w, ActivationBlocks a, int blocks) where T : struct, IBlockDots
    {
        if (typeof(T) == typeof(Avx2Dots)) return Q4_KAvx2(w, a.Qs, a.D, a.BSums, blocks);
        uint* sm = stackalloc uint[4];
        byte* sc = (byte*)sm, m = sc + 8;
        float acc = 0;
        for (int b = 0; b < blocks; b++, w += 144)
        {
            UnpackScales(w + 4, sm);
            int isum = T.Q4K(w + 16, a.Qs + 256 * b, sc);
            int msum = T.MinSum(m, a.BSums + 16 * b);
            float dx = a.D[b];
            acc += F16(w) * dx * isum - F16(w + 2) * dx * msum;
        }
        return acc;
    }

    /// <summary>
    /// <see cref="Q4_K"/> with whole super-blocks done by <see cref="Avx2Dots.Q4KParts"/>: the same float operations.
    /// Two super-blocks go at a time: their four integer sums (dot and min of each) are reduced together
    /// (<see cref="Avx2Dots.Q4KPairTotals"/>) and converted to float in one vector (the same rounding as one at a time),
    /// then their float terms are added into the accumulator one after the other, in block order.
    /// </summary>
    private static float Q4_KAvx2(byte* w, sbyte* qs, float* d, short* bsums, int blocks)
    {
        // The table's address in a local: read in the loop, the static field would bring a class-initialisation check
        // (this method can be compiled before the class is initialised), whose helper call forces spills every block.
        float* half = HalfTable;
        float acc = 0;
        int b = 0;
        for (; b + 2 <= blocks; b += 2, w += 2 * 144)
        {
            // Two super-blocks are 288 bytes, at most five lines.
            Sse.Prefetch0(w + PrefetchBytes);
            Sse.Prefetch0(w + PrefetchBytes + 64);
            Sse.Prefetch0(w + PrefetchBytes + 128);
            Sse.Prefetch0(w + PrefetchBytes + 192);
            Sse.Prefetch0(w + PrefetchBytes + 256);
            sbyte* x = qs + 256 * b;
            short* s = bsums + 16 * b;
            var (dot0, min0) = Avx2Dots.Q4KParts(w + 4, w + 16, x, s);
            var (dot1, min1) = Avx2Dots.Q4KParts(w + 148, w + 160, x + 256, s + 16);
            var sums = Vector128.ConvertToSingle(Avx2Dots.Q4KPairTotals(dot0, min0, dot1, min1));
            acc += Q4_KTerm(half, w, d[b], sums.ToScalar(), sums.GetElement(1));
            acc += Q4_KTerm(half, w + 144, d[b + 1], sums.GetElement(2), sums.GetElement(3));
        }
        for (; b < blocks; b++, w += 144)
        {
            Sse.Prefetch0(w + PrefetchBytes);
            Sse.Prefetch0(w + PrefetchBytes + 64);
            Sse.Prefetch0(w + PrefetchBytes + 128);
            var (isum, msum) = Avx2Dots.Q4KBlock(w + 4, w + 16, qs + 256 * b, bsums + 16 * b);
            acc += Q4_KTerm(half, w, d[b], isum, msum);
        }
        return acc;
    }

    /// <summary>A Q4_K super-block's float term d * dx * isum - dmin * dx * msum (d and dmin the f16 values at w and w + 2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Q4_KTerm(float* half, byte* w, float dx, float isum, float msum) =>
        half[*(ushort*)w] * dx * isum - half[*(ushort*)(w + 2)] * dx * msum;

    public static float Q5_K<T>(byte* w, ActivationBlocks a, int blocks) where T : struct, IBlockDots
    {
        uint* sm = stackalloc uint[4];
        byte* sc = (byte*)sm, m = sc + 8;
        float acc = 0;
        for (int b = 0; b < blocks; b++, w += 176)
        {
            UnpackScales(w + 4, sm);
            int isum = T.Q5K(w + 16, w + 48, a.Qs + 256 * b, sc);
            int msum = T.MinSum(m, a.BSums + 16 * b);
            float dx = a.D[b];
            acc += F16(w) * dx * isum - F16(w + 2) * dx * msum;
        }
        return acc;
    }

    public static float Q6_K<T>(byte* w, ActivationBlocks a, int blocks) where T : struct, IBlockDots
    {
        if (typeof(T) == typeof(Avx2Dots)) return Q6_KAvx2(w, a.Qs, a.D, a.BSums, blocks);
        float acc = 0;
        for (int b = 0; b < blocks; b++, w += 210)
        {
            sbyte* sc = (sbyte*)(w + 192);
            short* bsums = a.BSums + 16 * b;
            int offset = 0;
            for (int g = 0; g < 16; g++) offset += sc[g] * bsums[g];
            int isum = T.Q6K(w, w + 128, sc, a.Qs + 256 * b) - 32 * offset;
            acc += F16(w + 208) * a.D[b] * isum;
        }
        return acc;
    }

    /// <summary><see cref="Q6_K"/> with whole super-blocks done by <see cref="Avx2Dots.Q6KBlock"/>: the same float operations.</summary>
    private static float Q6_KAvx2(byte* w, sbyte* qs, float* d, short* bsums, int blocks)
    {
        float* half = HalfTable; // in a local, as in Q4_KAvx2
        float acc = 0;
        for (int b = 0; b < blocks; b++, w += 210)
        {
            Sse.Prefetch0(w + PrefetchBytes);
            Sse.Prefetch0(w + PrefetchBytes + 64);
            Sse.Prefetch0(w + PrefetchBytes + 128);
            Sse.Prefetch0(w + PrefetchBytes + 192);
            int isum = Avx2Dots.Q6KBlock(w, w + 128, (sbyte*)(w + 192), qs + 256 * b, bsums + 16 * b);
            acc += half[*(ushort*)(w + 208)] * d[b] * isum;
        }
        return acc;
    }
}
