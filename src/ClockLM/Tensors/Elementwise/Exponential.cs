using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ClockLM.Tensors;

/// <summary>
/// e^x eight lanes at a time, for softmax and the gated activations, with a scalar twin that performs the same float
/// operations and so returns the same bits. Within 2 ulp of the exact value for results in the normal float range;
/// results below the smallest normal float (x &lt; -87.34) are 0, above the largest (x &gt; 88.72) +∞, NaN stays NaN.
/// </summary>
/// <remarks>
/// e^x = 2^n e^r with n = round(x / ln 2) and r = x - n ln 2, |r| ≤ ln(2)/2. ln 2 is split into a part with few
/// mantissa bits (so n·C1 is exact) and the rest, as in Cody and Waite; e^r is its Taylor polynomial of degree 7
/// (truncation error r⁸/8! &lt; 6e-9) by Horner's rule with fused multiply-adds; 2^n is built from exponent bits in
/// two halves so that n = -126 and n = 128 need no special case.
/// </remarks>
internal static class Exponential
{
    private const float Log2E = 1.44269504088896341f;
    private const float C1 = 0.693359375f;          // ln 2 rounded to 9 significant bits
    private const float C2 = -2.12194440e-4f;       // ln 2 - C1
    private const float RoundMagic = 12582912f;     // 1.5 * 2^23: adding it rounds to an integer in the low mantissa bits
    private const float MinArgument = -87.3365479f; // ln(smallest normal float)
    private const float MaxArgument = 88.7228394f;  // ln(largest float)

    // 1/k! for k = 7 down to 2.
    private const float P7 = 1f / 5040, P6 = 1f / 720, P5 = 1f / 120, P4 = 1f / 24, P3 = 1f / 6, P2 = 0.5f;

    /// <summary>e^x, the reference the vector path equals bit for bit.</summary>
    public static float Exp(float x)
    {
        if (float.IsNaN(x)) return x;
        if (x < MinArgument) return 0f;
        if (x > MaxArgument) return float.PositiveInfinity;
        float t = MathF.FusedMultiplyAdd(x, Log2E, RoundMagic);
        int n = BitConverter.SingleToInt32Bits(t) - BitConverter.SingleToInt32Bits(RoundMagic);
        float nf = t - RoundMagic;
        float r = MathF.FusedMultiplyAdd(nf, -C1, x);
        r = MathF.FusedMultiplyAdd(nf, -C2, r);
        float p = MathF.FusedMultiplyAdd(P7, r, P6);
        p = MathF.FusedMultiplyAdd(p, r, P5);
        p = MathF.FusedMultiplyAdd(p, r, P4);
        p = MathF.FusedMultiplyAdd(p, r, P3);
        p = MathF.FusedMultiplyAdd(p, r, P2);
        p = MathF.FusedMultiplyAdd(p, r, 1f);
        p = MathF.FusedMultiplyAdd(p, r, 1f);
        int n1 = n >> 1, n2 = n - n1;
        return p * BitConverter.Int32BitsToSingle((n1 + 127) << 23) * BitConverter.Int32BitsToSingle((n2 + 127) << 23);
    }

    /// <summary>e^x of every lane (needs FMA for the same bits as <see cref="Exp(float)"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        var xc = Vector256.MinNative(Vector256.MaxNative(x, Vector256.Create(MinArgument)), Vector256.Create(MaxArgument));
        var t = Vector256.FusedMultiplyAdd(xc, Vector256.Create(Log2E), Vector256.Create(RoundMagic));
        var n = t.AsInt32() - Vector256.Create(RoundMagic).AsInt32();
        var nf = t - Vector256.Create(RoundMagic);
        var r = Vector256.FusedMultiplyAdd(nf, Vector256.Create(-C1), xc);
        r = Vector256.FusedMultiplyAdd(nf, Vector256.Create(-C2), r);
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(P7), r, Vector256.Create(P6));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P5));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        var n1 = Vector256.ShiftRightArithmetic(n, 1);
        var n2 = n - n1;
        var bias = Vector256.Create(127);
        var e = p * Vector256.ShiftLeft(n1 + bias, 23).AsSingle() * Vector256.ShiftLeft(n2 + bias, 23).AsSingle();
        // Outside the range: 0 below, +inf above, NaN through.
        e = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(MinArgument)), Vector256<float>.Zero, e);
        e = Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(MaxArgument)), Vector256.Create(float.PositiveInfinity), e);
        return Vector256.ConditionalSelect(Vector256.Equals(x, x), e, x);
    }
}
