using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// F16 rows of a matrix known to hold only finite values (<see cref="FiniteHalves"/>) times x: decoding's F16 product.
/// Per 32 halves the AVX2 loop widens four groups of eight in three instructions each (sign-extend from memory, shift,
/// mask: <see cref="HalfWidening.WidenFiniteUnscaled"/>) and adds their products with x·2^112 into four lane
/// accumulators, as <see cref="FloatDots.F16Rows"/> does (so with its bits) but without watching for infinities and
/// NaNs, which took a fifth of its instructions. The weights are prefetched 4 KB ahead.
/// </summary>
/// <remarks>A 512-bit form of the loop (pairs of the accumulators in one register, the same bits) was not faster on an
/// AVX-512 EPYC (Zen 4 splits 512-bit operations in two), so there is none.</remarks>
internal static unsafe class F16MatVec
{
    private const int PrefetchHalves = 2048;

    /// <summary>
    /// y[r] = W[r, :] · x for rows [start, end) (rows <paramref name="rowBytes"/> apart), W finite. <paramref name="xs"/>
    /// is x·2^112 (<see cref="FloatDots.ScaledForHalves"/>), or null when x is too large to scale: then the widened halves
    /// are scaled instead.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(byte* weights, int rowBytes, int n, float* x, float* xs, float* y, int start, int end)
    {
        for (int r = start; r < end; r++)
        {
            var w = (ushort*)(weights + (long)r * rowBytes);
            y[r] = xs == null ? Row(w, x, x, n, prescaled: false) : Row(w, xs, x, n, prescaled: true);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Row(ushort* w, float* xv, float* x, int n, bool prescaled)
    {
        var mask = HalfWidening.FiniteMask;
        var scale = Vector256.Create(HalfWidening.TwoPow112Bits).AsSingle();
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            Sse.Prefetch0(w + i + PrefetchHalves);
            a0 = Fma.MultiplyAdd(Widen(w + i, mask, scale, prescaled), Vector256.Load(xv + i), a0);
            a1 = Fma.MultiplyAdd(Widen(w + i + 8, mask, scale, prescaled), Vector256.Load(xv + i + 8), a1);
            a2 = Fma.MultiplyAdd(Widen(w + i + 16, mask, scale, prescaled), Vector256.Load(xv + i + 16), a2);
            a3 = Fma.MultiplyAdd(Widen(w + i + 24, mask, scale, prescaled), Vector256.Load(xv + i + 24), a3);
        }
        return Finish(w, xv, x, n, i, a0, a1, a2, a3, mask, scale, prescaled);
    }

    /// <summary>The eight-value steps after the last 32 (into a0), the accumulators' sum ((a0 + a1) + (a2 + a3)), and
    /// the scalar tail over x, as <see cref="FloatDots.F16Rows"/> ends.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Finish(ushort* w, float* xv, float* x, int n, int i, Vector256<float> a0, Vector256<float> a1,
        Vector256<float> a2, Vector256<float> a3, Vector256<int> mask, Vector256<float> scale, bool prescaled)
    {
        for (; i + 8 <= n; i += 8)
            a0 = Fma.MultiplyAdd(Widen(w + i, mask, scale, prescaled), Vector256.Load(xv + i), a0);
        float tail = 0;
        for (; i < n; i++) tail += HalfWidening.ToSingle(w[i]) * x[i];
        return Vector256.Sum((a0 + a1) + (a2 + a3)) + tail;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Widen(ushort* p, Vector256<int> mask, Vector256<float> scale, bool prescaled)
    {
        var unscaled = HalfWidening.WidenFiniteUnscaled(p, mask);
        return prescaled ? unscaled : unscaled * scale;
    }
}
