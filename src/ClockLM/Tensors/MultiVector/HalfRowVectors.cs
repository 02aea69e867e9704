using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static ClockLM.Tensors.HalfMatVec;

namespace ClockLM.Tensors;

/// <summary>
/// F16 and BF16 rows times a few vectors on AVX2 (a token and its drafted followers verified in one pass, a short
/// prompt chunk, a few sequences decoding together): each row streams from memory once, its halves widened in registers
/// 32 at a time and multiplied with every vector of a group before the next 32 are read. Nothing is written but the
/// results, so a product of two vectors reads what one vector's product reads and costs little more than it; the tiles
/// (<see cref="FloatTiles"/>) first widen every row into a buffer, which pays only over many vectors.
/// </summary>
/// <remarks>
/// <para>For every (row, vector) the float operations are those of <see cref="HalfMatVec"/> on that vector, hence of
/// <see cref="FloatDots.Half16x256"/>: four accumulators of eight lanes over every 32 values, the steps of eight
/// after the last 32 into the first, <c>Sum((a0 + a1) + (a2 + a3))</c> plus the scalar tail. On 256-bit registers a
/// group is two vectors (eight accumulators); with <see cref="MatMulJob.Wide"/> (AVX-512F) four (two for the last
/// two or fewer), each vector's pairs of accumulators in 512-bit registers, split back into 256-bit halves before the steps of eight as HalfMatVec does.
/// A last group short of vectors repeats its last one, which computes the same result again into the same place.</para>
/// <para>F16 halves are widened in three integer operations to their value times 2^-112 (exact for finite halves,
/// <see cref="HalfWidening.WidenFiniteUnscaled"/>), against copies of the vectors scaled by 2^112
/// (<see cref="Prescale"/>), or multiplied by 2^112 when some vector is too large to scale: the products are the same
/// exact reals either way. Until a product has read every row of a matrix and found it finite
/// (<see cref="FiniteHalves"/>), the loop watches for infinities and NaNs, and a row that holds one is computed again
/// for each vector by the general row dot (<see cref="FloatDots.Half16x256"/>).</para>
/// </remarks>
internal static unsafe class HalfRowVectors
{
    /// <summary>Most vectors a product runs here; more go to the tiles, which reuse each widened row across them (from
    /// five vectors on they are as fast, on tinyllama-1.1b's matrices with AVX-512).</summary>
    public const int MostVectors = 4;

    /// <summary>Rows this short (or shorter) run here up to <see cref="MostShortRowVectors"/> vectors: the tiles' work per
    /// block of rows (widening into a buffer, accumulators kept in memory, a reduction per row and vector) is not paid
    /// back by so few columns (on the built-in model's 256-column matrices this loop is 1.5x faster at 5 to 16
    /// vectors, on a shared AVX-512 EPYC).</summary>
    public const int ShortRow = 256;

    /// <summary>Most vectors a product of rows of at most <see cref="ShortRow"/> values runs here (a token and up to 15
    /// drafts on a small model).</summary>
    public const int MostShortRowVectors = 16;

    [ThreadStatic] private static float[]? _scaled;

    /// <summary>True when <paramref name="job"/>'s product runs here: F16 or BF16 weights, at most
    /// <see cref="MostVectors"/> vectors (<see cref="MostShortRowVectors"/> for rows of at most <see cref="ShortRow"/>
    /// values) in the file's layout (a matrix in panels takes the tiles, which read them); the caller has checked for
    /// AVX2 and FMA.</summary>
    public static bool Takes(in MatMulJob job) => job.Type is GgmlType.F16 or GgmlType.BF16 && !job.Panels
        && job.Count <= (job.Cols <= ShortRow ? MostShortRowVectors : MostVectors);

    /// <summary>
    /// The <paramref name="count"/> vectors of <paramref name="n"/> values at <paramref name="x"/>, the first n/8·8 values
    /// of each times 2^112, in a per-thread buffer (count vectors n apart); null when some |x| ≥ 2^16 (or is not
    /// finite), whose scaled value would overflow. Scaling by a power of two is exact otherwise, subnormals included.
    /// </summary>
    public static float* Prescale(float* x, int count, int n)
    {
        long total = (long)count * n;
        var buffer = _scaled;
        if (buffer is null || buffer.Length < total)
            _scaled = buffer = GC.AllocateUninitializedArray<float>((int)Math.Max(total, 64), pinned: true);
        float* xs = (float*)Unsafe.AsPointer(ref buffer[0]);
        // Its own buffer, not MatVec's: these vectors stay in use while the pool's threads run the product.
        return FloatDots.ScaleForHalves(x, xs, count, n) ? xs : null;
    }

    /// <summary>Rows [start, end) of the product times every vector of <paramref name="job"/>.</summary>
    public static void Rows(in MatMulJob job, int start, int end)
    {
        if (job.Type == GgmlType.BF16) Rows<BF16>(job, job.X, start, end);
        else if (job.ScaledX != null) Rows<PrescaledF16>(job, job.ScaledX, start, end);
        else Rows<F16>(job, job.X, start, end);
    }

    /// <summary>The rows with widening <typeparamref name="T"/>: the vector loops read <paramref name="xv"/> (the vectors,
    /// or their scaled copies), the scalar tails the job's X.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows<T>(in MatMulJob job, float* xv, int start, int end) where T : struct, IHalfWidening
    {
        int n = job.Cols, count = job.Count, group = job.Wide ? 4 : 2;
        bool watch = job.Type == GgmlType.F16 && !job.KnownFinite;
        for (int r = start; r < end; r++)
        {
            var w = (ushort*)(job.Weights + (long)r * job.RowBytes);
            if (watch && !Finite(w, n))
            {
                job.Halves?.SawNonFinite();
                for (int t = 0; t < count; t++)
                    job.Y[(long)t * job.Rows + r] = FloatDots.Half16x256(w, job.X + (long)t * n, n, bf16: false);
                continue;
            }
            for (int g = 0; g < count; g += group)
            {
                // Vector indices of the group, the last repeated to fill it.
                int t0 = g, t1 = Math.Min(g + 1, count - 1), t2 = Math.Min(g + 2, count - 1), t3 = Math.Min(g + 3, count - 1);
                if (job.Wide && count - g <= 2) Row512x2<T>(job, w, xv, r, t0, t1);
                else if (job.Wide) Row512x4<T>(job, w, xv, r, t0, t1, t2, t3);
                else Row256x2<T>(job, w, xv, r, t0, t1);
            }
        }
    }

    /// <summary>True when none of the row's n halves is an infinity or NaN (exponent 31: 0xF800 and above, doubled).</summary>
    private static bool Finite(ushort* w, int n)
    {
        var top = Vector256<ushort>.Zero;
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            var h = Vector256.Load(w + i);
            top = Vector256.Max(top, h + h);
        }
        if (Vector256.GreaterThanOrEqualAny(top, Vector256.Create((ushort)0xF800))) return false;
        for (; i < n; i++)
            if ((ushort)(w[i] + w[i]) >= 0xF800) return false;
        return true;
    }

    /// <summary>Row <paramref name="r"/> times vectors t0 and t1, 256-bit: each 32 values widened once for both.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row256x2<T>(in MatMulJob job, ushort* w, float* xv, int r, int t0, int t1) where T : struct, IHalfWidening
    {
        int n = job.Cols;
        float* x0 = xv + (long)t0 * n, x1 = xv + (long)t1 * n;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            var u = T.Widen(w + i);
            a0 = Fma.MultiplyAdd(u, Vector256.Load(x0 + i), a0);
            b0 = Fma.MultiplyAdd(u, Vector256.Load(x1 + i), b0);
            u = T.Widen(w + i + 8);
            a1 = Fma.MultiplyAdd(u, Vector256.Load(x0 + i + 8), a1);
            b1 = Fma.MultiplyAdd(u, Vector256.Load(x1 + i + 8), b1);
            u = T.Widen(w + i + 16);
            a2 = Fma.MultiplyAdd(u, Vector256.Load(x0 + i + 16), a2);
            b2 = Fma.MultiplyAdd(u, Vector256.Load(x1 + i + 16), b2);
            u = T.Widen(w + i + 24);
            a3 = Fma.MultiplyAdd(u, Vector256.Load(x0 + i + 24), a3);
            b3 = Fma.MultiplyAdd(u, Vector256.Load(x1 + i + 24), b3);
        }
        Store<T>(job, w, xv, r, t0, i, a0, a1, a2, a3);
        Store<T>(job, w, xv, r, t1, i, b0, b1, b2, b3);
    }

    /// <summary>Row <paramref name="r"/> times vectors t0..t3, 512-bit: each 32 values widened once (two 16-value
    /// registers) for all four; lanes 0-7 of a vector's first register are its a0, lanes 8-15 its a1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row512x4<T>(in MatMulJob job, ushort* w, float* xv, int r, int t0, int t1, int t2, int t3) where T : struct, IHalfWidening
    {
        int n = job.Cols;
        float* x0 = xv + (long)t0 * n, x1 = xv + (long)t1 * n, x2 = xv + (long)t2 * n, x3 = xv + (long)t3 * n;
        Vector512<float> a01 = default, a23 = default, b01 = default, b23 = default;
        Vector512<float> c01 = default, c23 = default, d01 = default, d23 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            var u = T.Widen512(w + i);
            var v = T.Widen512(w + i + 16);
            a01 = Avx512F.FusedMultiplyAdd(u, Vector512.Load(x0 + i), a01);
            a23 = Avx512F.FusedMultiplyAdd(v, Vector512.Load(x0 + i + 16), a23);
            b01 = Avx512F.FusedMultiplyAdd(u, Vector512.Load(x1 + i), b01);
            b23 = Avx512F.FusedMultiplyAdd(v, Vector512.Load(x1 + i + 16), b23);
            c01 = Avx512F.FusedMultiplyAdd(u, Vector512.Load(x2 + i), c01);
            c23 = Avx512F.FusedMultiplyAdd(v, Vector512.Load(x2 + i + 16), c23);
            d01 = Avx512F.FusedMultiplyAdd(u, Vector512.Load(x3 + i), d01);
            d23 = Avx512F.FusedMultiplyAdd(v, Vector512.Load(x3 + i + 16), d23);
        }
        Store<T>(job, w, xv, r, t0, i, a01.GetLower(), a01.GetUpper(), a23.GetLower(), a23.GetUpper());
        Store<T>(job, w, xv, r, t1, i, b01.GetLower(), b01.GetUpper(), b23.GetLower(), b23.GetUpper());
        Store<T>(job, w, xv, r, t2, i, c01.GetLower(), c01.GetUpper(), c23.GetLower(), c23.GetUpper());
        Store<T>(job, w, xv, r, t3, i, d01.GetLower(), d01.GetUpper(), d23.GetLower(), d23.GetUpper());
    }

    /// <summary>Row <paramref name="r"/> times vectors t0 and t1, 512-bit (the last two vectors of a product).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row512x2<T>(in MatMulJob job, ushort* w, float* xv, int r, int t0, int t1) where T : struct, IHalfWidening
    {
        int n = job.Cols;
        float* x0 = xv + (long)t0 * n, x1 = xv + (long)t1 * n;
        Vector512<float> a01 = default, a23 = default, b01 = default, b23 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            var u = T.Widen512(w + i);
            var v = T.Widen512(w + i + 16);
            a01 = Avx512F.FusedMultiplyAdd(u, Vector512.Load(x0 + i), a01);
            a23 = Avx512F.FusedMultiplyAdd(v, Vector512.Load(x0 + i + 16), a23);
            b01 = Avx512F.FusedMultiplyAdd(u, Vector512.Load(x1 + i), b01);
            b23 = Avx512F.FusedMultiplyAdd(v, Vector512.Load(x1 + i + 16), b23);
        }
        Store<T>(job, w, xv, r, t0, i, a01.GetLower(), a01.GetUpper(), a23.GetLower(), a23.GetUpper());
        Store<T>(job, w, xv, r, t1, i, b01.GetLower(), b01.GetUpper(), b23.GetLower(), b23.GetUpper());
    }

    /// <summary>Vector t's result for row r: the one-vector kernel's ending from <paramref name="i"/> (steps of eight,
    /// the accumulators' sum, the scalar tail over the unscaled vector).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<T>(in MatMulJob job, ushort* w, float* xv, int r, int t, int i,
        Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3) where T : struct, IHalfWidening
    {
        long at = (long)t * job.Cols;
        job.Y[(long)t * job.Rows + r] = Finish<T>(w, xv + at, job.X + at, job.Cols, i, a0, a1, a2, a3);
    }
}
