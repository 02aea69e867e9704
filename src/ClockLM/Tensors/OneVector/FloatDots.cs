using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Dot products of F32, F16 and BF16 weight rows with float activations. The scalar reference sums left to right;
/// vector paths keep four independent lane accumulators (fused multiply-add) and add them at the end, so results
/// differ from the reference only by float rounding order (bounded in the tests by 2 γ_n Σ|w x|).
/// Halves are widened exactly by moving exponent and mantissa into place (scaled by 2^112), bfloat16 by a 16-bit shift.
/// </summary>
internal static unsafe class FloatDots
{
    public static float Dot(GgmlType type, KernelPath path, byte* w, float* x, int n) => (type, path) switch
    {
        (GgmlType.F32, KernelPath.Scalar) => F32Scalar((float*)w, x, n),
        (GgmlType.F16, KernelPath.Scalar) => F16Scalar((ushort*)w, x, n),
        (GgmlType.BF16, KernelPath.Scalar) => BF16Scalar((ushort*)w, x, n),
        (GgmlType.F32, KernelPath.Vector128) => F32x128((float*)w, x, n),
        (GgmlType.F16, KernelPath.Vector128) => Half16x128((ushort*)w, x, n, bf16: false),
        (GgmlType.BF16, KernelPath.Vector128) => Half16x128((ushort*)w, x, n, bf16: true),
        (GgmlType.F32, KernelPath.Vector256) => F32x256((float*)w, x, n),
        (GgmlType.F16, KernelPath.Vector256) => Half16x256((ushort*)w, x, n, bf16: false),
        (GgmlType.BF16, KernelPath.Vector256) => Half16x256((ushort*)w, x, n, bf16: true),
        (GgmlType.F32, _) => F32x512((float*)w, x, n),
        (GgmlType.F16, _) => Half16x512((ushort*)w, x, n, bf16: false),
        _ => Half16x512((ushort*)w, x, n, bf16: true),
    };

    public static float F32Scalar(float* w, float* x, int n)
    {
        float s = 0;
        for (int i = 0; i < n; i++) s += w[i] * x[i];
        return s;
    }

    public static float F16Scalar(ushort* w, float* x, int n)
    {
        float s = 0;
        for (int i = 0; i < n; i++) s += (float)BitConverter.UInt16BitsToHalf(w[i]) * x[i];
        return s;
    }

    public static float BF16Scalar(ushort* w, float* x, int n)
    {
        float s = 0;
        for (int i = 0; i < n; i++) s += Dequantize.BFloat16ToSingle(w[i]) * x[i];
        return s;
    }

    // ---- widening halves: bits (h & 0x7fff) << 13 as a float, times 2^112, is the half's magnitude (normal or
    // subnormal); infinities and NaNs (exponent 31) keep all-ones exponents; the sign moves to bit 31.
    private const uint Scale2Pow112 = HalfWidening.TwoPow112Bits;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Widen(Vector128<uint> h, bool bf16)
    {
        if (bf16) return Vector128.ShiftLeft(h, 16).AsSingle();
        var em = Vector128.ShiftLeft(h & Vector128.Create(0x7fffu), 13);
        var mag = em.AsSingle() * Vector128.Create(Scale2Pow112).AsSingle();
        var infNan = Vector128.Equals(h & Vector128.Create(0x7c00u), Vector128.Create(0x7c00u));
        var bits = Vector128.ConditionalSelect(infNan, em | Vector128.Create(0x7f800000u), mag.AsUInt32());
        return (bits | Vector128.ShiftLeft(h & Vector128.Create(0x8000u), 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Widen(Vector256<uint> h, bool bf16)
    {
        if (bf16) return Vector256.ShiftLeft(h, 16).AsSingle();
        var em = Vector256.ShiftLeft(h & Vector256.Create(0x7fffu), 13);
        var mag = (em.AsSingle() * Vector256.Create(Scale2Pow112).AsSingle()).AsUInt32();
        // Exponent 31 (inf/NaN): em ≥ 0x0f800000; OR-ing an all-ones exponent keeps mag's mantissa, which is em's.
        var infNan = Vector256.GreaterThan(em.AsInt32(), Vector256.Create(0x0f7fffff)).AsUInt32();
        return (mag | (infNan & Vector256.Create(0x7f800000u)) | Vector256.ShiftLeft(h & Vector256.Create(0x8000u), 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Widen(Vector512<uint> h, bool bf16)
    {
        if (bf16) return Vector512.ShiftLeft(h, 16).AsSingle();
        var em = Vector512.ShiftLeft(h & Vector512.Create(0x7fffu), 13);
        var mag = em.AsSingle() * Vector512.Create(Scale2Pow112).AsSingle();
        var infNan = Vector512.Equals(h & Vector512.Create(0x7c00u), Vector512.Create(0x7c00u));
        var bits = Vector512.ConditionalSelect(infNan, em | Vector512.Create(0x7f800000u), mag.AsUInt32());
        return (bits | Vector512.ShiftLeft(h & Vector512.Create(0x8000u), 16)).AsSingle();
    }

    private static float Tail(GgmlTypeTail kind, void* w, float* x, int from, int n)
    {
        float s = 0;
        for (int i = from; i < n; i++)
            s += kind switch
            {
                GgmlTypeTail.F32 => ((float*)w)[i],
                GgmlTypeTail.F16 => HalfWidening.ToSingle(((ushort*)w)[i]),
                _ => Dequantize.BFloat16ToSingle(((ushort*)w)[i]),
            } * x[i];
        return s;
    }

    private enum GgmlTypeTail { F32, F16, BF16 }

    public static float F32x128(float* w, float* x, int n)
    {
        Vector128<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            a0 = Vector128.FusedMultiplyAdd(Vector128.Load(w + i), Vector128.Load(x + i), a0);
            a1 = Vector128.FusedMultiplyAdd(Vector128.Load(w + i + 4), Vector128.Load(x + i + 4), a1);
            a2 = Vector128.FusedMultiplyAdd(Vector128.Load(w + i + 8), Vector128.Load(x + i + 8), a2);
            a3 = Vector128.FusedMultiplyAdd(Vector128.Load(w + i + 12), Vector128.Load(x + i + 12), a3);
        }
        for (; i + 4 <= n; i += 4) a0 = Vector128.FusedMultiplyAdd(Vector128.Load(w + i), Vector128.Load(x + i), a0);
        return Vector128.Sum((a0 + a1) + (a2 + a3)) + Tail(GgmlTypeTail.F32, w, x, i, n);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float F32x256(float* w, float* x, int n)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            a0 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i), Vector256.Load(x + i), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i + 8), Vector256.Load(x + i + 8), a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i + 16), Vector256.Load(x + i + 16), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i + 24), Vector256.Load(x + i + 24), a3);
        }
        for (; i + 8 <= n; i += 8) a0 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i), Vector256.Load(x + i), a0);
        float s = Vector256.Sum((a0 + a1) + (a2 + a3));
        return i < n ? s + Tail(GgmlTypeTail.F32, w, x, i, n) : s + 0f;
    }

    public static float F32x512(float* w, float* x, int n)
    {
        Vector512<float> a0 = default, a1 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i), Vector512.Load(x + i), a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 16), Vector512.Load(x + i + 16), a1);
        }
        for (; i + 16 <= n; i += 16) a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i), Vector512.Load(x + i), a0);
        return Vector512.Sum(a0 + a1) + Tail(GgmlTypeTail.F32, w, x, i, n);
    }

    public static float Half16x128(ushort* w, float* x, int n, bool bf16)
    {
        Vector128<float> a0 = default, a1 = default;
        int i = 0;
        for (; i + 8 <= n; i += 8)
        {
            var (lo, hi) = Vector128.Widen(Vector128.Load(w + i));
            a0 = Vector128.FusedMultiplyAdd(Widen(lo, bf16), Vector128.Load(x + i), a0);
            a1 = Vector128.FusedMultiplyAdd(Widen(hi, bf16), Vector128.Load(x + i + 4), a1);
        }
        return Vector128.Sum(a0 + a1) + Tail(bf16 ? GgmlTypeTail.BF16 : GgmlTypeTail.F16, w, x, i, n);
    }

    public static float Half16x256(ushort* w, float* x, int n, bool bf16)
    {
        if (!bf16 && Avx2.IsSupported && Fma.IsSupported)
        {
            float s = F16Avx2(w, x, x, n, prescaled: false, out bool infNan);
            if (!infNan) return s;
        }
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            a0 = Vector256.FusedMultiplyAdd(Widen(Load8(w + i), bf16), Vector256.Load(x + i), a0);
            a1 = Vector256.FusedMultiplyAdd(Widen(Load8(w + i + 8), bf16), Vector256.Load(x + i + 8), a1);
            a2 = Vector256.FusedMultiplyAdd(Widen(Load8(w + i + 16), bf16), Vector256.Load(x + i + 16), a2);
            a3 = Vector256.FusedMultiplyAdd(Widen(Load8(w + i + 24), bf16), Vector256.Load(x + i + 24), a3);
        }
        for (; i + 8 <= n; i += 8)
            a0 = Vector256.FusedMultiplyAdd(Widen(Load8(w + i), bf16), Vector256.Load(x + i), a0);
        return Vector256.Sum((a0 + a1) + (a2 + a3)) + Tail(bf16 ? GgmlTypeTail.BF16 : GgmlTypeTail.F16, w, x, i, n);
    }

    /// <summary>
    /// F16 rows [start, end) of a matrix (rows <paramref name="rowBytes"/> apart) times x on AVX2 with FMA, into y.
    /// Each row's result is that of <see cref="Half16x256"/>; the loop saves the widening's multiplication by 2^112 by
    /// folding it into <paramref name="xs"/>, the copy of x that <see cref="ScaledForHalves"/> made once per product
    /// (null when x has values too large for it): the products are exact either way, so the fused multiply-adds round
    /// the same sums. A row with an infinity or NaN is told to <paramref name="halves"/> (which then knows the matrix is
    /// not all finite) and runs the general loop.
    /// </summary>
    public static void F16Rows(byte* weights, int rowBytes, int n, float* x, float* xs, float* y, int start, int end, FiniteHalves? halves = null)
    {
        for (int r = start; r < end; r++)
        {
            var w = (ushort*)(weights + (long)r * rowBytes);
            float s = xs != null ? F16Avx2(w, xs, x, n, prescaled: true, out bool infNan) : F16Avx2(w, x, x, n, prescaled: false, out infNan);
            if (infNan) halves?.SawNonFinite();
            y[r] = infNan ? Half16x256(w, x, n, bf16: false) : s;
        }
    }

    [ThreadStatic] private static float[]? _scaled;

    /// <summary>
    /// The first n/8·8 values of x times 2^112 in a per-thread buffer, or null when some |x| ≥ 2^16 (or is not finite),
    /// whose scaled value would overflow. Scaling by a power of two is exact otherwise (subnormals included).
    /// </summary>
    public static float* ScaledForHalves(float* x, int n)
    {
        var buffer = _scaled;
        if (buffer is null || buffer.Length < n)
            _scaled = buffer = GC.AllocateUninitializedArray<float>(Math.Max(n, 64), pinned: true);
        float* xs = (float*)Unsafe.AsPointer(ref buffer[0]);
        return ScaleForHalves(x, xs, 1, n) ? xs : null;
    }

    /// <summary>
    /// Writes the first n/8·8 values of each of <paramref name="count"/> vectors (n apart) at x times 2^112 to the same
    /// places at xs; false when some |x| ≥ 2^16 (or is not finite), whose scaled value would overflow.
    /// </summary>
    internal static bool ScaleForHalves(float* x, float* xs, int count, int n)
    {
        var scale = Vector256.Create(Scale2Pow112).AsSingle();
        var largest = Vector256<uint>.Zero;
        for (int t = 0; t < count; t++)
        {
            float* from = x + (long)t * n, to = xs + (long)t * n;
            for (int i = 0; i + 8 <= n; i += 8)
            {
                var v = Vector256.Load(from + i);
                largest = Vector256.Max(largest, v.AsUInt32() & Vector256.Create(0x7fffffffu));
                (v * scale).Store(to + i);
            }
        }
        // 0x47800000 is 2^16.
        return !Vector256.GreaterThanOrEqualAny(largest, Vector256.Create(0x47800000u));
    }

    /// <summary>
    /// F16 row with AVX2 and FMA, widening finite halves in three operations: the half sign-extended to 32 bits and
    /// shifted left 13 has its sign in bit 31 and exponent and mantissa in bits 13..27 (bits 28..30 are copies of the
    /// sign, cleared by the mask); as a float that is the half's value times 2^-112 (subnormals included), which one
    /// exact multiplication by 2^112 puts right, or which multiplies <paramref name="xv"/> = x·2^112 when
    /// <paramref name="prescaled"/> (the product is the same exact real). Infinities and NaNs (exponent 31) would come
    /// out finite, so the loop keeps the largest (h + h) it saw and reports them through <paramref name="infNan"/> for
    /// the caller to take the general path; the summation order is that of <see cref="Half16x256"/>'s general loop, and
    /// the scalar tail reads x. There is no software prefetch: the hardware prefetchers follow the rows' one stream
    /// (see <see cref="HalfMatVec"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float F16Avx2(ushort* w, float* xv, float* x, int n, bool prescaled, out bool infNan)
    {
        var mask = HalfWidening.FiniteMask;
        var scale = Vector256.Create(Scale2Pow112).AsSingle();
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<ushort> top = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            var h0 = Vector256.Load(w + i);
            var h1 = Vector256.Load(w + i + 16);
            top = Vector256.Max(top, Vector256.Max(h0 + h0, h1 + h1));
            a0 = Fma.MultiplyAdd(WidenFinite(w + i, mask, scale, prescaled), Vector256.Load(xv + i), a0);
            a1 = Fma.MultiplyAdd(WidenFinite(w + i + 8, mask, scale, prescaled), Vector256.Load(xv + i + 8), a1);
            a2 = Fma.MultiplyAdd(WidenFinite(w + i + 16, mask, scale, prescaled), Vector256.Load(xv + i + 16), a2);
            a3 = Fma.MultiplyAdd(WidenFinite(w + i + 24, mask, scale, prescaled), Vector256.Load(xv + i + 24), a3);
        }
        for (; i + 8 <= n; i += 8)
        {
            var h = Vector256.Create(Vector128.Load(w + i), Vector128<ushort>.Zero);
            top = Vector256.Max(top, h + h);
            a0 = Fma.MultiplyAdd(WidenFinite(w + i, mask, scale, prescaled), Vector256.Load(xv + i), a0);
        }
        // Exponent 31 doubled: 0xF800 and above.
        infNan = Vector256.GreaterThanOrEqualAny(top, Vector256.Create((ushort)0xF800));
        return Vector256.Sum((a0 + a1) + (a2 + a3)) + Tail(GgmlTypeTail.F16, w, x, i, n);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> WidenFinite(ushort* p, Vector256<int> mask, Vector256<float> scale, bool prescaled)
    {
        var scaled = HalfWidening.WidenFiniteUnscaled(p, mask);
        return prescaled ? scaled : scaled * scale;
    }

    /// <summary>8 consecutive 16-bit values zero-extended to 32 bits (one <c>vpmovzxwd</c> with AVX2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> Load8(ushort* p) => Avx2.IsSupported
        ? Avx2.ConvertToVector256Int32(p).AsUInt32()
        : Vector256.WidenLower(Vector256.Create(Vector128.Load(p), Vector128<ushort>.Zero));

    public static float Half16x512(ushort* w, float* x, int n, bool bf16)
    {
        Vector512<float> a0 = default, a1 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            var (lo, hi) = Vector512.Widen(Vector512.Load(w + i));
            a0 = Vector512.FusedMultiplyAdd(Widen(lo, bf16), Vector512.Load(x + i), a0);
            a1 = Vector512.FusedMultiplyAdd(Widen(hi, bf16), Vector512.Load(x + i + 16), a1);
        }
        return Vector512.Sum(a0 + a1) + Tail(bf16 ? GgmlTypeTail.BF16 : GgmlTypeTail.F16, w, x, i, n);
    }
}
