using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Decoding's product of 16-bit float rows with x on the <see cref="KernelPath.Vector256"/> path: F16 rows of a matrix
/// known to hold only finite values (<see cref="FiniteHalves"/>), and BF16 rows. Each row's result has the bits of
/// <see cref="FloatDots.Half16x256"/>: four accumulators of eight lanes over every 32 values (lane j of accumulator k
/// sums the products at 32·step + 8k + j), the steps of eight after the last 32 into the first, then
/// <c>Sum((a0 + a1) + (a2 + a3))</c> plus the scalar tail.
/// </summary>
/// <remarks>
/// <para>Widening: an F16 row sign-extends each half to 32 bits, shifts it left 13 and masks the sign copies off
/// (<see cref="HalfWidening.WidenFiniteUnscaled"/>), which is the value times 2^-112; x comes scaled by 2^112
/// (<see cref="FloatDots.ScaledForHalves"/>) so that the product is the same exact real, or, when x is too large to
/// scale, the widened halves are multiplied by 2^112 instead. A BF16 value shifted left 16 is its float.</para>
/// <para>Wide (AVX-512F): the same loop with pairs of accumulators in one 512-bit register (lanes 0..7 are a0, 8..15
/// a1), sixteen values widened per instruction; split back into 256-bit halves before the steps of eight, so the bits
/// are those of the 256-bit loop.</para>
/// <para>No software prefetch: the rows are one sequential stream, which the hardware prefetchers follow; prefetching
/// 4 KB ahead, as the F16 loop once did, streamed a fifth to a quarter less on an AVX-512 EPYC (median of the
/// interleaved kernel benchmark <c>ClockLM.Bench --f16-stream</c>, machine shared with other work).</para>
/// </remarks>
internal static unsafe class HalfMatVec
{
    /// <summary>
    /// y[r] = W[r, :] · x for the F16 rows [start, end) (rows <paramref name="rowBytes"/> apart), W finite.
    /// <paramref name="xs"/> is x·2^112 (<see cref="FloatDots.ScaledForHalves"/>), or null when x is too large to scale.
    /// <paramref name="wide"/> runs the 512-bit loop (AVX-512F required), with the same bits.
    /// </summary>
    public static void F16Rows(byte* weights, int rowBytes, int n, float* x, float* xs, float* y, int start, int end, bool wide)
    {
        if (xs != null) Rows<PrescaledF16>(weights, rowBytes, n, xs, x, y, start, end, wide);
        else Rows<F16>(weights, rowBytes, n, x, x, y, start, end, wide);
    }

    /// <summary>y[r] = W[r, :] · x for the BF16 rows [start, end); <paramref name="wide"/> as for <see cref="F16Rows"/>.</summary>
    public static void BF16Rows(byte* weights, int rowBytes, int n, float* x, float* y, int start, int end, bool wide) =>
        Rows<BF16>(weights, rowBytes, n, x, x, y, start, end, wide);

    /// <summary>
    /// <see cref="F16Rows"/> for a matrix of <paramref name="rows"/> rows laid out in panels (<see cref="HalfPanels"/>),
    /// finite: each row's result has the same bits.
    /// </summary>
    public static void F16PanelRows(byte* panels, int rows, int n, float* x, float* xs, float* y, int start, int end, bool wide)
    {
        if (xs != null) PanelRows<PrescaledF16>(panels, rows, n, xs, x, y, start, end, wide);
        else PanelRows<F16>(panels, rows, n, x, x, y, start, end, wide);
    }

    /// <summary><see cref="BF16Rows"/> for a matrix laid out in panels (<see cref="HalfPanels"/>).</summary>
    public static void BF16PanelRows(byte* panels, int rows, int n, float* x, float* y, int start, int end, bool wide) =>
        PanelRows<BF16>(panels, rows, n, x, x, y, start, end, wide);

    /// <summary>Rows of a matrix in panels that go through the panels together (their accumulators, 128 bytes a row,
    /// wait on the stack from one panel to the next).</summary>
    internal const int PanelGroupRows = 64;

    /// <summary>
    /// Rows [start, end) of a matrix in panels, <see cref="PanelGroupRows"/> at a time: the group's pieces of the first
    /// panel (one sequential stream of weights, 8 KB of x staying in the first-level cache), then of the next, each row's
    /// four accumulators carried from panel to panel in memory. Every accumulator takes the products of a pass over the
    /// whole row in the same order, so the bits are those of <see cref="Rows{T}"/>. The steps of eight and the scalar
    /// tail after the last 32 lie in the last panel.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PanelRows<T>(byte* panels, int totalRows, int n, float* xv, float* x, float* y, int start, int end, bool wide)
        where T : struct, IHalfWidening
    {
        int n32 = n & ~31, last = HalfPanels.Count(n) - 1;
        // Row j's accumulators a0..a3 are acc[4j..4j+3]; the 512-bit loop keeps (a0, a1) and (a2, a3) in one register
        // each, the same 128 bytes in memory.
        var acc = stackalloc Vector256<float>[4 * PanelGroupRows];
        for (int first = start; first < end; first += PanelGroupRows)
        {
            int rows = Math.Min(PanelGroupRows, end - first);
            new Span<Vector256<float>>(acc, 4 * rows).Clear();
            for (int p = 0, c0 = 0; c0 < n32; p++, c0 += HalfPanels.Columns)
            {
                int c1 = Math.Min(c0 + HalfPanels.Columns, n32), width = HalfPanels.Width(n, p);
                ushort* w = HalfPanels.Base(panels, totalRows, n, first, p);
                for (int j = 0; j < rows; j++, w += width)
                    if (wide) Panel512<T>(w, xv, c0, c1, acc + 4 * j);
                    else Panel256<T>(w, xv, c0, c1, acc + 4 * j);
            }
            ushort* tail = HalfPanels.Base(panels, totalRows, n, first, last);
            for (int j = 0, width = HalfPanels.Width(n, last); j < rows; j++, tail += width)
            {
                var a = acc + 4 * j;
                y[first + j] = Finish<T>(tail, xv, x, n, n32, a[0], a[1], a[2], a[3]);
            }
        }
    }

    /// <summary>Columns [c0, c1) (multiples of 32) of one row (w[c] is column c) into its accumulators at a.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Panel256<T>(ushort* w, float* xv, int c0, int c1, Vector256<float>* a) where T : struct, IHalfWidening
    {
        Vector256<float> a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
        for (int i = c0; i < c1; i += 32)
        {
            a0 = Fma.MultiplyAdd(T.Widen(w + i), Vector256.Load(xv + i), a0);
            a1 = Fma.MultiplyAdd(T.Widen(w + i + 8), Vector256.Load(xv + i + 8), a1);
            a2 = Fma.MultiplyAdd(T.Widen(w + i + 16), Vector256.Load(xv + i + 16), a2);
            a3 = Fma.MultiplyAdd(T.Widen(w + i + 24), Vector256.Load(xv + i + 24), a3);
        }
        (a[0], a[1], a[2], a[3]) = (a0, a1, a2, a3);
    }

    /// <summary><see cref="Panel256{T}"/> with (a0, a1) and (a2, a3) in one 512-bit register each.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Panel512<T>(ushort* w, float* xv, int c0, int c1, Vector256<float>* a) where T : struct, IHalfWidening
    {
        Vector512<float> a01 = Vector512.Load((float*)a), a23 = Vector512.Load((float*)(a + 2));
        for (int i = c0; i < c1; i += 32)
        {
            a01 = Avx512F.FusedMultiplyAdd(T.Widen512(w + i), Vector512.Load(xv + i), a01);
            a23 = Avx512F.FusedMultiplyAdd(T.Widen512(w + i + 16), Vector512.Load(xv + i + 16), a23);
        }
        a01.Store((float*)a);
        a23.Store((float*)(a + 2));
    }

    /// <summary>The rows with widening <typeparamref name="T"/>: the vector loops read <paramref name="xv"/>, the scalar
    /// tail <paramref name="x"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows<T>(byte* weights, int rowBytes, int n, float* xv, float* x, float* y, int start, int end, bool wide)
        where T : struct, IHalfWidening
    {
        byte* row = weights + (long)start * rowBytes;
        if (wide)
            for (int r = start; r < end; r++, row += rowBytes) y[r] = Row512<T>((ushort*)row, xv, x, n);
        else
            for (int r = start; r < end; r++, row += rowBytes) y[r] = Row256<T>((ushort*)row, xv, x, n);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Row256<T>(ushort* w, float* xv, float* x, int n) where T : struct, IHalfWidening
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            a0 = Fma.MultiplyAdd(T.Widen(w + i), Vector256.Load(xv + i), a0);
            a1 = Fma.MultiplyAdd(T.Widen(w + i + 8), Vector256.Load(xv + i + 8), a1);
            a2 = Fma.MultiplyAdd(T.Widen(w + i + 16), Vector256.Load(xv + i + 16), a2);
            a3 = Fma.MultiplyAdd(T.Widen(w + i + 24), Vector256.Load(xv + i + 24), a3);
        }
        return Finish<T>(w, xv, x, n, i, a0, a1, a2, a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Row512<T>(ushort* w, float* xv, float* x, int n) where T : struct, IHalfWidening
    {
        Vector512<float> a01 = default, a23 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            a01 = Avx512F.FusedMultiplyAdd(T.Widen512(w + i), Vector512.Load(xv + i), a01);
            a23 = Avx512F.FusedMultiplyAdd(T.Widen512(w + i + 16), Vector512.Load(xv + i + 16), a23);
        }
        return Finish<T>(w, xv, x, n, i, a01.GetLower(), a01.GetUpper(), a23.GetLower(), a23.GetUpper());
    }

    /// <summary>The steps of eight after the last 32 (into a0), the accumulators' sum and the scalar tail over x (also
    /// how <see cref="HalfRowVectors"/> ends each vector's row, so both kernels give these bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Finish<T>(ushort* w, float* xv, float* x, int n, int i,
        Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3) where T : struct, IHalfWidening
    {
        for (; i + 8 <= n; i += 8)
            a0 = Fma.MultiplyAdd(T.Widen(w + i), Vector256.Load(xv + i), a0);
        float tail = 0;
        for (; i < n; i++) tail += T.ToSingle(w[i]) * x[i];
        return Vector256.Sum((a0 + a1) + (a2 + a3)) + tail;
    }

    /// <summary>Sixteen-bit floats to floats, eight (or sixteen) at a time, as the vector loops read them (here and in
    /// <see cref="HalfRowVectors"/>).</summary>
    internal interface IHalfWidening
    {
        static abstract Vector256<float> Widen(ushort* p);
        static abstract Vector512<float> Widen512(ushort* p);
        static abstract float ToSingle(ushort h);
    }

    /// <summary>Finite halves times 2^-112, for x·2^112.</summary>
    internal readonly struct PrescaledF16 : IHalfWidening
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Widen(ushort* p) => HalfWidening.WidenFiniteUnscaled(p, HalfWidening.FiniteMask);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Widen512(ushort* p) =>
            (Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(Vector256.Load((short*)p)), 13) & Vector512.Create(HalfWidening.FiniteBits)).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float ToSingle(ushort h) => HalfWidening.ToSingle(h);
    }

    /// <summary>Finite halves at their value: the prescaled widening times 2^112 (exact).</summary>
    internal readonly struct F16 : IHalfWidening
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Widen(ushort* p) => PrescaledF16.Widen(p) * Vector256.Create(HalfWidening.TwoPow112Bits).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Widen512(ushort* p) => PrescaledF16.Widen512(p) * Vector512.Create(HalfWidening.TwoPow112Bits).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float ToSingle(ushort h) => HalfWidening.ToSingle(h);
    }

    /// <summary>bfloat16: sign-extended to 32 bits and shifted left 16 (the sign copies fall off the top).</summary>
    internal readonly struct BF16 : IHalfWidening
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Widen(ushort* p) => Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32((short*)p), 16).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Widen512(ushort* p) =>
            Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(Vector256.Load((short*)p)), 16).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float ToSingle(ushort h) => Dequantize.BFloat16ToSingle(h);
    }
}
