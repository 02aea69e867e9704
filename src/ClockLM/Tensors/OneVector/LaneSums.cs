using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>The lane sums of eight vectors at once, for kernels that compute eight dot products side by side.</summary>
internal static class LaneSums
{
    /// <summary>Lane j: the sum of the lanes of pj, added in the order ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
    /// Needs AVX.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Of8(Vector256<float> p0, Vector256<float> p1, Vector256<float> p2, Vector256<float> p3,
        Vector256<float> p4, Vector256<float> p5, Vector256<float> p6, Vector256<float> p7)
    {
        // After two rounds of pairwise adds, a holds the sums of lanes 0..3 of p0..p3 in its low half and of lanes 4..7
        // in its high half; b the same for p4..p7.
        var a = Avx.HorizontalAdd(Avx.HorizontalAdd(p0, p1), Avx.HorizontalAdd(p2, p3));
        var b = Avx.HorizontalAdd(Avx.HorizontalAdd(p4, p5), Avx.HorizontalAdd(p6, p7));
        return Avx.Permute2x128(a, b, 0x20) + Avx.Permute2x128(a, b, 0x31);
    }
}
