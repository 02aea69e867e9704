using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ClockLM.Tensors;

/// <summary>
/// Portable block dots on 128-bit vectors (SSE on x64, NEON on Arm, or software elsewhere): codes and activations
/// widened to 16 bits, multiplied (a product is at most 128 * 128, so it fits), and widened again to sum in 32 bits.
/// </summary>
internal readonly unsafe struct Vector128Dots : IBlockDots
{
    /// <summary>Per-lane partial sums of 16 code-times-activation products.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Dot16(Vector128<short> wLo, Vector128<short> wHi, sbyte* x)
    {
        var (xLo, xHi) = Vector128.Widen(Vector128.Load(x));
        var (a, b) = Vector128.Widen(wLo * xLo);
        var (c, d) = Vector128.Widen(wHi * xHi);
        return (a + b) + (c + d);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Dot16(Vector128<byte> codes, sbyte* x)
    {
        var (lo, hi) = Vector128.Widen(codes);
        return Dot16(lo.AsInt16(), hi.AsInt16(), x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Dot16(Vector128<sbyte> w, sbyte* x)
    {
        var (lo, hi) = Vector128.Widen(w);
        return Dot16(lo, hi, x);
    }

    private static Vector128<byte> Bits => Vector128.Create(0x8040201008040201UL).AsByte();

    /// <summary>0x10 in byte i where bit (first + i) of qh is set, for 16 bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> FifthBits(uint qh, int first)
    {
        uint half = qh >> first;
        var spread = Vector128.Create((ulong)(byte)half * 0x0101010101010101UL, (ulong)(byte)(half >> 8) * 0x0101010101010101UL).AsByte();
        return Vector128.Equals(spread & Bits, Bits) & Vector128.Create((byte)0x10);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int MinSum(byte* m, short* bsums)
    {
        // Adjacent bsums summed by widening the even and odd lanes; mins widened to 32 bits.
        var b0 = Vector128.Load(bsums).AsInt32();
        var b1 = Vector128.Load(bsums + 8).AsInt32();
        var pairs0 = Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(b0, 16), 16) + Vector128.ShiftRightArithmetic(b0, 16);
        var pairs1 = Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(b1, 16), 16) + Vector128.ShiftRightArithmetic(b1, 16);
        var (mLo, _) = Vector128.Widen(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(m)).AsByte());
        var (m0, m1) = Vector128.Widen(mLo);
        return Vector128.Sum(pairs0 * m0.AsInt32() + pairs1 * m1.AsInt32());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int S8(sbyte* w, sbyte* x) =>
        Vector128.Sum(Dot16(Vector128.Load(w), x) + Dot16(Vector128.Load(w + 16), x + 16));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int U4(byte* qs, sbyte* x)
    {
        var q = Vector128.Load(qs);
        var m = Vector128.Create((byte)0x0F);
        return Vector128.Sum(Dot16(q & m, x) + Dot16(Vector128.ShiftRightLogical(q, 4), x + 16));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int U5(byte* qs, uint qh, sbyte* x)
    {
        var q = Vector128.Load(qs);
        var m = Vector128.Create((byte)0x0F);
        return Vector128.Sum(Dot16((q & m) | FifthBits(qh, 0), x) + Dot16(Vector128.ShiftRightLogical(q, 4) | FifthBits(qh, 16), x + 16));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Q4K(byte* qs, sbyte* x, byte* sc)
    {
        var m = Vector128.Create((byte)0x0F);
        var acc = Vector128<int>.Zero;
        for (int c = 0; c < 4; c++)
        {
            var q0 = Vector128.Load(qs + 32 * c);
            var q1 = Vector128.Load(qs + 32 * c + 16);
            var lo = Dot16(q0 & m, x + 64 * c) + Dot16(q1 & m, x + 64 * c + 16);
            var hi = Dot16(Vector128.ShiftRightLogical(q0, 4), x + 64 * c + 32) + Dot16(Vector128.ShiftRightLogical(q1, 4), x + 64 * c + 48);
            acc += lo * sc[2 * c] + hi * sc[2 * c + 1];
        }
        return Vector128.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Q5K(byte* qh, byte* qs, sbyte* x, byte* sc)
    {
        var m = Vector128.Create((byte)0x0F);
        var sixteen = Vector128.Create((byte)0x10);
        var h0 = Vector128.Load(qh);
        var h1 = Vector128.Load(qh + 16);
        var acc = Vector128<int>.Zero;
        for (int c = 0; c < 4; c++)
        {
            var bLo = Vector128.Create((byte)(1 << (2 * c)));
            var bHi = Vector128.Create((byte)(2 << (2 * c)));
            var q0 = Vector128.Load(qs + 32 * c);
            var q1 = Vector128.Load(qs + 32 * c + 16);
            var lo = Dot16((q0 & m) | (Vector128.Equals(h0 & bLo, bLo) & sixteen), x + 64 * c)
                   + Dot16((q1 & m) | (Vector128.Equals(h1 & bLo, bLo) & sixteen), x + 64 * c + 16);
            var hi = Dot16(Vector128.ShiftRightLogical(q0, 4) | (Vector128.Equals(h0 & bHi, bHi) & sixteen), x + 64 * c + 32)
                   + Dot16(Vector128.ShiftRightLogical(q1, 4) | (Vector128.Equals(h1 & bHi, bHi) & sixteen), x + 64 * c + 48);
            acc += lo * sc[2 * c] + hi * sc[2 * c + 1];
        }
        return Vector128.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Q6K(byte* ql, byte* qh, sbyte* sc, sbyte* x)
    {
        var m = Vector128.Create((byte)0x0F);
        var three = Vector128.Create((byte)0x03);
        var acc = Vector128<int>.Zero;
        for (int h = 0; h < 2; h++)
            for (int half = 0; half < 2; half++) // values l in 0..15, then 16..31: one group each
            {
                int o = 16 * half;
                var l0 = Vector128.Load(ql + 64 * h + o);
                var l1 = Vector128.Load(ql + 64 * h + 32 + o);
                var hb = Vector128.Load(qh + 32 * h + o);
                var q1 = (l0 & m) | Vector128.ShiftLeft(hb & three, 4);
                var q2 = (l1 & m) | Vector128.ShiftLeft(Vector128.ShiftRightLogical(hb, 2) & three, 4);
                var q3 = Vector128.ShiftRightLogical(l0, 4) | Vector128.ShiftLeft(Vector128.ShiftRightLogical(hb, 4) & three, 4);
                var q4 = Vector128.ShiftRightLogical(l1, 4) | Vector128.ShiftLeft(Vector128.ShiftRightLogical(hb, 6), 4);
                sbyte* xh = x + 128 * h + o;
                sbyte* s = sc + 8 * h + half;
                acc += Dot16(q1, xh) * s[0] + Dot16(q2, xh + 32) * s[2] + Dot16(q3, xh + 64) * s[4] + Dot16(q4, xh + 96) * s[6];
            }
        return Vector128.Sum(acc);
    }
}
