using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>Exact widening of IEEE half-precision bits to floats, eight at a time.</summary>
internal static class HalfWidening
{
    /// <summary>The bits of the float 2^112, the factor between a half's exponent bias (15) and a float's (127).</summary>
    public const uint TwoPow112Bits = 0x77800000;

    /// <summary>Bits (h &amp; 0x7fff) &lt;&lt; 13 as a float, times 2^112, is the half's magnitude (normal or subnormal);
    /// exponent 31 (infinity, NaN) gets an all-ones exponent; the sign moves to bit 31.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Widen(Vector256<uint> h)
    {
        var em = Vector256.ShiftLeft(h & Vector256.Create(0x7fffu), 13);
        var mag = (em.AsSingle() * Vector256.Create(TwoPow112Bits).AsSingle()).AsUInt32();
        var infNan = Vector256.GreaterThan(em.AsInt32(), Vector256.Create(0x0f7fffff)).AsUInt32();
        return (mag | (infNan & Vector256.Create(0x7f800000u)) | Vector256.ShiftLeft(h & Vector256.Create(0x8000u), 16)).AsSingle();
    }

    /// <summary>One half's bits as a float, the same way as <see cref="Widen"/> (and equal to <c>(float)Half</c>).
    /// Kernels use this rather than the runtime's precompiled <see cref="Half"/> conversion, which is slow to call
    /// from between 256-bit loops.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort h)
    {
        uint em = (uint)(h & 0x7fff) << 13;
        uint mag = BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(em) * BitConverter.UInt32BitsToSingle(TwoPow112Bits));
        if (em > 0x0f7fffffu) mag |= 0x7f800000u;
        return BitConverter.UInt32BitsToSingle(mag | (uint)(h & 0x8000) << 16);
    }

    /// <summary>
    /// The eight halves at p, which must be finite, as floats times 2^-112, exactly, in three operations (AVX2):
    /// sign-extended to 32 bits and shifted left 13, a half has its sign in bit 31 and its exponent and mantissa in bits
    /// 13..27 (bits 28..30, copies of the sign, are masked off), which as a float is its value times 2^-112, subnormals
    /// included. An infinite or NaN half comes out finite. Callers multiply by 2^112, or fold it into the other factor.
    /// <paramref name="mask"/> is <see cref="FiniteMask"/>, a parameter so that loops can keep it in a register.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<float> WidenFiniteUnscaled(ushort* p, Vector256<int> mask) =>
        (Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32((short*)p), 13) & mask).AsSingle();

    /// <summary>The bits <see cref="WidenFiniteUnscaled"/> keeps: the sign (31), exponent and mantissa (13..27).</summary>
    public const int FiniteBits = unchecked((int)0x8FFFE000);

    /// <summary><see cref="FiniteBits"/> in every lane.</summary>
    public static Vector256<int> FiniteMask => Vector256.Create(FiniteBits);

    /// <summary><see cref="ToSingle(ushort)"/> of the half at p.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float ToSingle(byte* p) => ToSingle(Unsafe.ReadUnaligned<ushort>(p));
}
