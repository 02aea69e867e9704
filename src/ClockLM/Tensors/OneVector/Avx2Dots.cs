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
        // The 16 bytes in both halves (a load-port broadcast), the high half shifted right by 4, then masked.
        var q = Avx2.BroadcastVector128ToVector256(qs).AsUInt32();
        return (Avx2.ShiftRightLogicalVariable(q, Vector256.Create(0u, 0, 0, 0, 4, 4, 4, 4)) & Vector256.Create(0x0F0F0F0Fu)).AsByte();
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

    /// <summary>
    /// A whole Q4_K super-block from its packed bytes: Dot = <see cref="Q4K"/> with the scales unpacked from the 12
    /// bytes at <paramref name="packed"/>, Min = <see cref="MinSum"/> with its mins. The eight scales and eight mins
    /// are unpacked in two 64-bit words, widened to 16 bits once, and each sub-block's scale is spread over a vector
    /// with one byte shuffle; the mins meet the activation group sums in one vpmaddwd (each min repeated for its two
    /// groups). Both results are exact integers, so they equal the scalar definitions.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (int Dot, int Min) Q4KBlock(byte* packed, byte* qs, sbyte* x, short* bsums)
    {
        var (dot, min) = Q4KParts(packed, qs, x, bsums);
        return Totals(dot, min);
    }

    /// <summary><see cref="Q4KBlock"/> before its horizontal sums: Dot and Min as eight 32-bit partial sums each (their
    /// totals are Dot and Min), so that two super-blocks can be reduced together (<see cref="Q4KPairTotals"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<int> Dot, Vector256<int> Min) Q4KParts(byte* packed, byte* qs, sbyte* x, short* bsums)
    {
        const ulong low6 = 0x3f3f3f3f3f3f3f3f, low4 = 0x0f0f0f0f0f0f0f0f, low2 = 0x0303030303030303;
        // Bytes 0..7: scales 0..3 then scales 4..7; bytes 8..15: mins 0..3 then mins 4..7 (see RowDots.UnpackScales).
        ulong w0 = Unsafe.ReadUnaligned<uint>(packed), w1 = Unsafe.ReadUnaligned<uint>(packed + 4), w2 = Unsafe.ReadUnaligned<uint>(packed + 8);
        ulong w01 = w0 | (w1 << 32);
        ulong top = (w01 >> 6) & low2;                  // top bits of scales 4..7 (bytes 0..3), of mins 4..7 (bytes 4..7)
        ulong nib = (w2 & 0x0f0f0f0f) | ((w2 >> 4 & 0x0f0f0f0f) << 32); // low nibbles of scales 4..7, of mins 4..7
        ulong hi = (nib & low4) | (top << 4);           // scales 4..7 (bytes 0..3), mins 4..7 (bytes 4..7)
        ulong lo = w01 & low6;                          // scales 0..3 (bytes 0..3), mins 0..3 (bytes 4..7)
        ulong scales = (lo & 0xffffffff) | (hi << 32);
        ulong mins = (lo >> 32) | (hi & 0xffffffff00000000);
        var sc = Sse41.ConvertToVector128Int16(Vector128.CreateScalar(scales).AsByte());
        var sc2 = Vector256.Create(sc, sc).AsByte();
        // Shuffle controls spreading short j (bytes 2j, 2j+1) over all lanes; written out so they stay constants.
        var acc = Q4KChunk(qs, x, sc2, Vector256.Create((ushort)0x0100).AsByte(), Vector256.Create((ushort)0x0302).AsByte());
        acc += Q4KChunk(qs + 32, x + 64, sc2, Vector256.Create((ushort)0x0504).AsByte(), Vector256.Create((ushort)0x0706).AsByte());
        acc += Q4KChunk(qs + 64, x + 128, sc2, Vector256.Create((ushort)0x0908).AsByte(), Vector256.Create((ushort)0x0B0A).AsByte());
        acc += Q4KChunk(qs + 96, x + 192, sc2, Vector256.Create((ushort)0x0D0C).AsByte(), Vector256.Create((ushort)0x0F0E).AsByte());
        var m = Ssse3.Shuffle(Vector128.CreateScalar(mins).AsByte(), Vector128.Create((byte)0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7));
        return (acc, Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(m), Vector256.Load(bsums)));
    }

    /// <summary>The totals of two super-blocks' <see cref="Q4KParts"/>: (Dot, Min) of the first, then of the second, in lanes 0..3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Q4KPairTotals(Vector256<int> dot0, Vector256<int> min0, Vector256<int> dot1, Vector256<int> min1)
    {
        // Two rounds of vphaddd leave each total's low-half part in the low 128 bits and its high-half part in the high 128 bits.
        var h = Avx2.HorizontalAdd(Avx2.HorizontalAdd(dot0, min0), Avx2.HorizontalAdd(dot1, min1));
        return h.GetLower() + h.GetUpper();
    }

    /// <summary>One 32-byte chunk of Q4_K codes: low nibbles times x[0..31] scaled by one short of sc, high nibbles times x[32..63] by another.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q4KChunk(byte* qs, sbyte* x, Vector256<byte> sc, Vector256<byte> pickLo, Vector256<byte> pickHi)
    {
        var mask = Vector256.Create((byte)0x0F);
        var q = Vector256.Load(qs);
        return MulAdd(q & mask, Vector256.Load(x), Avx2.Shuffle(sc, pickLo).AsInt16())
            + MulAdd(Vector256.ShiftRightLogical(q.AsUInt16(), 4).AsByte() & mask, Vector256.Load(x + 32), Avx2.Shuffle(sc, pickHi).AsInt16());
    }

    /// <summary>
    /// A whole Q6_K super-block: Σ_g sc[g] Σ_i (q - 32) x, i.e. <see cref="Q6K"/> minus 32 Σ_g sc[g] bsums[g]. The
    /// sixteen scales are widened to 16 bits once; each 32-value vector's pair of scales is spread with one vpermd.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Q6KBlock(byte* ql, byte* qh, sbyte* sc, sbyte* x, short* bsums)
    {
        var s16 = Avx2.ConvertToVector256Int16(Vector128.Load(sc));                 // sc[0..15] as shorts
        var offset = Avx2.MultiplyAddAdjacent(s16, Vector256.Load(bsums));          // Σ sc[g] bsums[g], in pairs
        // Dword k of each half holds (sc[k], sc[k]) for k of that half: unpack within 128-bit lanes, then per half.
        var pairsLo = Avx2.UnpackLow(s16, s16).AsInt32();    // dwords: sc0 sc1 sc2 sc3 | sc8 sc9 sc10 sc11
        var pairsHi = Avx2.UnpackHigh(s16, s16).AsInt32();   // dwords: sc4 sc5 sc6 sc7 | sc12 sc13 sc14 sc15
        var acc = -Vector256.ShiftLeft(offset, 5);
        // Values 0..127 use scales 0..7: dwords 0..3 of pairsLo and pairsHi; values 128..255 scales 8..15: dwords 4..7.
        acc += Q6KHalf(ql, qh, x, pairsLo, pairsHi, Vector256.Create(0, 0, 0, 0, 1, 1, 1, 1), Vector256.Create(2, 2, 2, 2, 3, 3, 3, 3));
        acc += Q6KHalf(ql + 64, qh + 32, x + 128, pairsLo, pairsHi, Vector256.Create(4, 4, 4, 4, 5, 5, 5, 5), Vector256.Create(6, 6, 6, 6, 7, 7, 7, 7));
        return Vector256.Sum(acc);
    }

    /// <summary>Half of a Q6_K super-block (128 values, eight groups of 16); the index vectors pick the groups' scales.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q6KHalf(byte* ql, byte* qh, sbyte* x, Vector256<int> pairsLo, Vector256<int> pairsHi,
        Vector256<int> pick01, Vector256<int> pick23)
    {
        var m4 = Vector256.Create((byte)0x0F);
        var l0 = Vector256.Load(ql);
        var l1 = Vector256.Load(ql + 32);
        var hb = Vector256.Load(qh).AsUInt16();
        var q1 = (l0 & m4) | (Vector256.ShiftLeft(hb & Vector256.Create((ushort)0x0303), 4).AsByte());
        var q2 = (l1 & m4) | (Vector256.ShiftLeft(hb & Vector256.Create((ushort)0x0C0C), 2).AsByte());
        var q3 = (Vector256.ShiftRightLogical(l0.AsUInt16(), 4).AsByte() & m4) | (hb & Vector256.Create((ushort)0x3030)).AsByte();
        var q4 = (Vector256.ShiftRightLogical(l1.AsUInt16(), 4).AsByte() & m4)
            | Vector256.ShiftRightLogical(hb & Vector256.Create((ushort)0xC0C0), 2).AsByte();
        return MulAdd(q1, Vector256.Load(x), Avx2.PermuteVar8x32(pairsLo, pick01).AsInt16())
            + MulAdd(q2, Vector256.Load(x + 32), Avx2.PermuteVar8x32(pairsLo, pick23).AsInt16())
            + MulAdd(q3, Vector256.Load(x + 64), Avx2.PermuteVar8x32(pairsHi, pick01).AsInt16())
            + MulAdd(q4, Vector256.Load(x + 96), Avx2.PermuteVar8x32(pairsHi, pick23).AsInt16());
    }

    /// <summary>(Σ a, Σ b) over the eight lanes of each, with two rounds of vphaddd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (int, int) Totals(Vector256<int> a, Vector256<int> b)
    {
        var h = Avx2.HorizontalAdd(a, b);                            // a01 a23 b01 b23 | a45 a67 b45 b67
        var s = h.GetLower() + h.GetUpper();                         // a0123+4567 pairs, b likewise
        var t = Ssse3.HorizontalAdd(s, s);                           // Σa Σb Σa Σb
        return (t.ToScalar(), t.GetElement(1));
    }

    // vpmaddubsw's 16 sums: the first 8 cover values 0..15 (one group), the last 8 values 16..31 (the next group).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Scales(sbyte first, sbyte second) =>
        Vector256.Create(Vector128.Create((short)first), Vector128.Create((short)second));
}
