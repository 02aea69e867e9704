using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// AVX2 block dots: 32 unsigned codes times 32 signed activations with <c>vpmaddubsw</c> (pairs of products as
/// 16-bit sums, which cannot saturate: codes ≤ 63, or |w| ≤ 128 for Q8_0, times |x| ≤ 127, twice, stays below 32767),
/// then <c>vpmaddwd</c> against ones or against the sub-block scales to widen to 32 bits.
/// </summary>
internal readonly unsafe struct Avx2Dots : IBlockDots
{
    public static bool IsSupported => Avx2.IsSupported;

    private static Vector256<short> Ones => Vector256.Create((short)1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> MulAdd(Vector256<byte> u, Vector256<sbyte> s, Vector256<short> scale) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, s), scale);

    /// <summary>16 packed bytes to 32 codes: low nibbles first, then high nibbles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Nibbles(byte* qs)
    {
        var q = Vector128.Load(qs);
        var mask = Vector128.Create((byte)0x0F);
        return Vector256.Create(q & mask, Vector128.ShiftRightLogical(q, 4));
    }

    /// <summary>Bit i of qh as 0x10 in byte i, for 32 bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> FifthBits(uint qh)
    {
        // Byte i gets byte i/8 of qh, then bit i%8 is tested.
        var spread = Avx2.Shuffle(Vector256.Create(qh).AsByte(),
            Vector256.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
        var bit = Vector256.Create(0x8040201008040201UL).AsByte();
        return Vector256.Equals(spread & bit, bit) & Vector256.Create((byte)0x10);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int MinSum(byte* m, short* bsums)
    {
        var pairs = Avx2.MultiplyAddAdjacent(Vector256.Load(bsums), Vector256.Create((short)1)); // bsums[2j] + bsums[2j+1]
        var mins = Avx2.ConvertToVector256Int32(m);
        return Vector256.Sum(pairs * mins);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int S8(sbyte* w, sbyte* x) => Vector256.Sum(PartsS8(w, x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int U4(byte* qs, sbyte* x) => Vector256.Sum(PartsU4(qs, x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int U5(byte* qs, uint qh, sbyte* x) => Vector256.Sum(PartsU5(qs, qh, x));

    // The Parts* methods return a block's dot as eight 32-bit partial sums (their total is the block dot), so that
    // eight blocks can be reduced together by Sums8 instead of each paying for a full horizontal sum.

    /// <summary>Σ w x over 32 signed bytes, as eight partial sums: |w| times x with w's sign, since vpmaddubsw needs one unsigned operand.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> PartsS8(sbyte* w, sbyte* x)
    {
        var wv = Vector256.Load(w);
        return MulAdd(Avx2.Abs(wv), Avx2.Sign(Vector256.Load(x), wv), Ones);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> PartsU4(byte* qs, sbyte* x) => MulAdd(Nibbles(qs), Vector256.Load(x), Ones);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> PartsU5(byte* qs, uint qh, sbyte* x) => MulAdd(Nibbles(qs) | FifthBits(qh), Vector256.Load(x), Ones);

    /// <summary>
    /// The totals of eight vectors, lane i = Σ v_i: two rounds of vphaddd pair up neighbours within each 128-bit half,
    /// then the low and high halves of the eight totals are added. Integer adds, so the order does not matter.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Sums8(Vector256<int> v0, Vector256<int> v1, Vector256<int> v2, Vector256<int> v3,
        Vector256<int> v4, Vector256<int> v5, Vector256<int> v6, Vector256<int> v7)
    {
        var h0123 = Avx2.HorizontalAdd(Avx2.HorizontalAdd(v0, v1), Avx2.HorizontalAdd(v2, v3));
        var h4567 = Avx2.HorizontalAdd(Avx2.HorizontalAdd(v4, v5), Avx2.HorizontalAdd(v6, v7));
        return Avx2.Permute2x128(h0123, h4567, 0x20) + Avx2.Permute2x128(h0123, h4567, 0x31);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Q4K(byte* qs, sbyte* x, byte* sc)
    {
        var mask = Vector256.Create((byte)0x0F);
        var acc = Vector256<int>.Zero;
        for (int c = 0; c < 4; c++)
        {
            var q = Vector256.Load(qs + 32 * c);
            acc += MulAdd(q & mask, Vector256.Load(x + 64 * c), Vector256.Create((short)sc[2 * c]));
            acc += MulAdd(Vector256.ShiftRightLogical(q.AsUInt16(), 4).AsByte() & mask, Vector256.Load(x + 64 * c + 32),
                Vector256.Create((short)sc[2 * c + 1]));
        }
        return Vector256.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Q5K(byte* qh, byte* qs, sbyte* x, byte* sc)
    {
        var mask = Vector256.Create((byte)0x0F);
        var high = Vector256.Load(qh);
        var sixteen = Vector256.Create((byte)0x10);
        var acc = Vector256<int>.Zero;
        for (int c = 0; c < 4; c++)
        {
            var q = Vector256.Load(qs + 32 * c);
            var bitLo = Vector256.Create((byte)(1 << (2 * c)));
            var bitHi = Vector256.Create((byte)(2 << (2 * c)));
            var lo = (q & mask) | (Vector256.Equals(high & bitLo, bitLo) & sixteen);
            var hi = (Vector256.ShiftRightLogical(q.AsUInt16(), 4).AsByte() & mask) | (Vector256.Equals(high & bitHi, bitHi) & sixteen);
            acc += MulAdd(lo, Vector256.Load(x + 64 * c), Vector256.Create((short)sc[2 * c]));
            acc += MulAdd(hi, Vector256.Load(x + 64 * c + 32), Vector256.Create((short)sc[2 * c + 1]));
        }
        return Vector256.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Q6K(byte* ql, byte* qh, sbyte* sc, sbyte* x)
    {
        var m4 = Vector256.Create((byte)0x0F);
        var acc = Vector256<int>.Zero;
        for (int h = 0; h < 2; h++)
        {
            var l0 = Vector256.Load(ql + 64 * h);
            var l1 = Vector256.Load(ql + 64 * h + 32);
            var hb = Vector256.Load(qh + 32 * h).AsUInt16();
            // Top two bits of the four values sharing qh[l], moved to bits 4..5 of each byte.
            var q1 = (l0 & m4) | (Vector256.ShiftLeft(hb & Vector256.Create((ushort)0x0303), 4).AsByte());
            var q2 = (l1 & m4) | (Vector256.ShiftLeft(hb & Vector256.Create((ushort)0x0C0C), 2).AsByte());
            var q3 = (Vector256.ShiftRightLogical(l0.AsUInt16(), 4).AsByte() & m4) | (hb & Vector256.Create((ushort)0x3030)).AsByte();
            var q4 = (Vector256.ShiftRightLogical(l1.AsUInt16(), 4).AsByte() & m4)
                | Vector256.ShiftRightLogical(hb & Vector256.Create((ushort)0xC0C0), 2).AsByte();
            sbyte* s = sc + 8 * h;
            sbyte* xh = x + 128 * h;
            acc += MulAdd(q1, Vector256.Load(xh), Scales(s[0], s[1]));
            acc += MulAdd(q2, Vector256.Load(xh + 32), Scales(s[2], s[3]));
            acc += MulAdd(q3, Vector256.Load(xh + 64), Scales(s[4], s[5]));
            acc += MulAdd(q4, Vector256.Load(xh + 96), Scales(s[6], s[7]));
        }
        return Vector256.Sum(acc);
    }

    // vpmaddubsw's 16 sums: the first 8 cover values 0..15 (one group), the last 8 values 16..31 (the next group).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Scales(sbyte first, sbyte second) =>
        Vector256.Create(Vector128.Create((short)first), Vector128.Create((short)second));
}
