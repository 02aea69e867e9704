using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Q4_0 weights packed eight rows and two blocks at a time, and their products with one to four vectors.
/// </summary>
/// <remarks>
/// <para>
/// A packed Q4_0 matrix is a sequence of block pairs of <see cref="PairBytes"/> bytes. Pair P of an octet of rows
/// holds blocks 2P and 2P + 1 of the eight rows: four 64-byte registers of code bytes, in which 32-bit lane 2j + h of
/// register k is word k of the 16 code bytes of row j's block 2P + h (its low nibbles are codes 4k..4k+3, its high
/// nibbles codes 16+4k..16+4k+3), then the sixteen f16 scales in the same lane order. With an odd number of blocks
/// the last pair's second block is zeros. The columns are cut into panels of <see cref="PanelPairs"/> pairs (2048
/// values): panel after panel, octet after octet within a panel, the octet's pairs of that panel after each other.
/// A product runs panel by panel over a few octets at a time, so that the activations of one panel stay in the
/// first-level cache while the weights stream past, however long the rows are.
/// </para>
/// <para>
/// The activations are laid out to match (<see cref="LayOut"/>): for each pair and vector, eight 64-bit words, word k
/// being activation word k of block 2P then of block 2P + 1, then the two blocks' scales (times 2^112,
/// <see cref="ActivationBlocks.DUp"/>) and their code sums times 8. One broadcast of a 64-bit word then serves both
/// blocks: a vpmaddubsw on a 512-bit register multiplies eight rows of two blocks, and the products of eight code
/// registers add up in 16 bits (at most 30480) before one vpmaddwd, as in <see cref="RowOctets"/>.
/// </para>
/// <para>
/// Lane 2j + h accumulates row j's terms of the blocks 2P + h: pairs alternate between two accumulators, so lane
/// 2j of the first holds blocks 0, 4, 8, ..., lane 2j + 1 blocks 1, 5, 9, ..., and the second blocks 2, 6, ... and
/// 3, 7, .... Those are the four accumulators of <see cref="MatVec"/> with the same terms (dw * dx) * (Σ q x - 8 Σ x)
/// in the same order (a panel holds an even number of pairs, and the accumulators carry from one panel to the next),
/// and the result is (a0 + a1) + (a2 + a3): every (row, vector) equals MatVec bit for bit. A missing block adds +0,
/// which leaves an accumulator unchanged (a sum that starts at +0 is never -0).
/// </para>
/// <para>
/// With AVX-512BW the kernels work on whole 512-bit registers; with AVX2 alone on their two 256-bit halves (rows 0..3,
/// then rows 4..7), with the same operations per lane.
/// </para>
/// </remarks>
internal static unsafe class Q4_0Pairs
{
    /// <summary>Bytes of one block pair of eight rows: 4 x 64 code bytes and 16 f16 scales.</summary>
    public const int PairBytes = 4 * 64 + 32;

    /// <summary>Bytes of one vector's activations for one block pair: eight 64-bit words, two scales, two sums.</summary>
    public const int ActBytes = 8 * 8 + 8 + 8;

    /// <summary>Block pairs of a row of <paramref name="cols"/> values.</summary>
    public static int Pairs(int cols) => (cols / 32 + 1) / 2;

    /// <summary>Bytes of one packed octet of rows of <paramref name="cols"/> values.</summary>
    public static long OctetBytes(int cols) => (long)Pairs(cols) * PairBytes;

    /// <summary>Block pairs per column panel (an even number, see the remarks).</summary>
    public const int PanelPairs = 32;

    /// <summary>Column panels of a row of <paramref name="cols"/> values.</summary>
    public static int Panels(int cols) => (Pairs(cols) + PanelPairs - 1) / PanelPairs;

    /// <summary>Block pairs in panel <paramref name="panel"/> (the last may hold fewer).</summary>
    public static int PairsIn(int cols, int panel) => Math.Min(PanelPairs, Pairs(cols) - panel * PanelPairs);

    /// <summary>Where octet <paramref name="octet"/>'s pairs of panel <paramref name="panel"/> start, in a packed
    /// matrix of <paramref name="octets"/> octets.</summary>
    public static byte* At(byte* packed, int cols, int octets, int panel, int octet) =>
        packed + ((long)panel * PanelPairs * octets + (long)octet * PairsIn(cols, panel)) * PairBytes;

    /// <summary>Where pair <paramref name="pair"/> of octet <paramref name="octet"/> lies, in a packed matrix of
    /// <paramref name="octets"/> octets.</summary>
    private static byte* PairAt(byte* packed, int cols, int octets, int octet, int pair)
    {
        int panel = pair / PanelPairs;
        return At(packed, cols, octets, panel, octet) + (long)(pair - panel * PanelPairs) * PairBytes;
    }

    /// <summary>Packs eight rows in their file layout at w, w + rowBytes, ... as octet <paramref name="octet"/> of the
    /// packed matrix of <paramref name="octets"/> octets at packed; the missing second block of an odd count is zeros.</summary>
    public static void Pack(byte* w, int rowBytes, int cols, byte* packed, int octet, int octets)
    {
        int blocks = cols / 32;
        var words = stackalloc uint[32];
        for (int b = 0; b < 2 * Pairs(cols); b++)
        {
            byte* pair = PairAt(packed, cols, octets, octet, b / 2);
            int h = b & 1;
            if (b < blocks) Q4_0Octets.TransposeCodes(w + 18L * b, rowBytes, (byte*)words); // register k, lane j: word k of row j
            else new Span<uint>(words, 32).Clear();
            for (int k = 0; k < 4; k++)
                for (int j = 0; j < 8; j++)
                    ((uint*)(pair + 64 * k))[2 * j + h] = words[8 * k + j];
            for (int j = 0; j < 8; j++)
                ((ushort*)(pair + 256))[2 * j + h] = b < blocks ? *(ushort*)(w + (long)j * rowBytes + 18L * b) : (ushort)0;
        }
    }

    /// <summary>
    /// The activations of <paramref name="count"/> vectors laid out for the kernels at <paramref name="dst"/>: vectors
    /// in groups of four (the last group may hold fewer), each group pair by pair, each pair vector by vector
    /// (<see cref="ActBytes"/> each). Group g starts at dst + g * pairs * 4 * ActBytes.
    /// </summary>
    public static void LayOut(ActivationBlocks[] activations, int count, int cols, byte* dst)
    {
        int blocks = cols / 32, pairs = Pairs(cols);
        for (int g = 0; 4 * g < count; g++)
        {
            int n = Math.Min(4, count - 4 * g);
            byte* group = dst + (long)g * pairs * 4 * ActBytes;
            for (int v = 0; v < n; v++)
            {
                var a = new RowDots.Act32(activations[4 * g + v], scaledUp: true);
                for (int q = 0; q < pairs; q++)
                {
                    byte* p = group + ((long)q * n + v) * ActBytes;
                    int b = 2 * q;
                    bool second = b + 1 < blocks;
                    var w0 = Vector256.Load((int*)(a.Qs + 32L * b));
                    var w1 = second ? Vector256.Load((int*)(a.Qs + 32L * (b + 1))) : default;
                    // Words k of the two blocks side by side: unpacking interleaves within 128-bit lanes, the
                    // permutes put the lanes in order.
                    var (low, high) = (Avx2.UnpackLow(w0, w1), Avx2.UnpackHigh(w0, w1));
                    Avx2.Permute2x128(low, high, 0x20).Store((int*)p);
                    Avx2.Permute2x128(low, high, 0x31).Store((int*)(p + 32));
                    ((float*)(p + 64))[0] = a.D[b];
                    ((float*)(p + 64))[1] = second ? a.D[b + 1] : 0f;
                    ((int*)(p + 72))[0] = a.Sum[b] << 3;
                    ((int*)(p + 72))[1] = second ? a.Sum[b + 1] << 3 : 0;
                }
            }
        }
    }

    /// <summary>Bytes <see cref="LayOut"/> writes for <paramref name="count"/> vectors of <paramref name="cols"/> values.</summary>
    public static long LaidOutBytes(int count, int cols) => (long)(count + 3) / 4 * Pairs(cols) * 4 * ActBytes;

    /// <summary>Bytes of the accumulators one octet and one group of vectors carry from panel to panel.</summary>
    public const int StateBytes = 8 * 64;

    /// <summary>
    /// One octet's pairs of one panel (at w) times the <paramref name="n"/> (1 to 4) vectors of one group, whose
    /// activations for these pairs are at acts. The accumulators start at zero in the first panel and come from
    /// <paramref name="state"/> otherwise; after the last panel vector v's eight results go to y + v * yStride, after
    /// the others the accumulators go back to <paramref name="state"/>. With <paramref name="wide"/> (which needs
    /// AVX-512BW, <see cref="KernelOptions.PackedWidth"/>) on 512-bit registers, else on 256-bit halves.
    /// </summary>
    public static void Panel(byte* w, int pairs, byte* acts, int n, byte* state, bool first, bool last, float* y, int yStride, bool wide)
    {
        if (wide) Panel512(w, pairs, acts, n, (Vector512<float>*)state, first, last, y, yStride);
        else Panel256(w, pairs, acts, n, (Vector256<float>*)state, first, last, y, yStride);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Panel512(byte* w, int pairs, byte* acts, int n, Vector512<float>* state, bool first, bool last, float* y, int yStride)
    {
        // e_v: pairs 0, 2, 4, ... of vector v (blocks 0, 4, ... and 1, 5, ...); o_v: pairs 1, 3, 5, ....
        Vector512<float> e0 = default, e1 = default, e2 = default, e3 = default;
        Vector512<float> o0 = default, o1 = default, o2 = default, o3 = default;
        if (!first)
            (e0, e1, e2, e3, o0, o1, o2, o3) = (state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7]);
        int stride = n * ActBytes, q = 0;
        for (; q + 2 <= pairs; q += 2)
        {
            byte* p = w + (long)q * PairBytes, a = acts + (long)q * stride;
            Pair512(p, a, n, ref e0, ref e1, ref e2, ref e3);
            Pair512(p + PairBytes, a + stride, n, ref o0, ref o1, ref o2, ref o3);
        }
        if (q < pairs) // only in the last panel: the others hold an even number of pairs
            Pair512(w + (long)q * PairBytes, acts + (long)q * stride, n, ref e0, ref e1, ref e2, ref e3);
        if (!last)
        {
            (state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7]) = (e0, e1, e2, e3, o0, o1, o2, o3);
            return;
        }
        Store512(e0, o0, y);
        if (n > 1) Store512(e1, o1, y + yStride);
        if (n > 2) Store512(e2, o2, y + 2L * yStride);
        if (n > 3) Store512(e3, o3, y + 3L * yStride);
    }

    /// <summary>One block pair (at p) times the n vectors' activations at a, each vector's term added to its accumulator.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pair512(byte* p, byte* a, int n, ref Vector512<float> s0, ref Vector512<float> s1, ref Vector512<float> s2, ref Vector512<float> s3)
    {
        Prefetch(p + 4096);
        var nibbles = Vector512.Create((byte)0x0F);
        var c0 = Vector512.Load(p); var c1 = Vector512.Load(p + 64); var c2 = Vector512.Load(p + 128); var c3 = Vector512.Load(p + 192);
        var (l0, l1, l2, l3) = (c0 & nibbles, c1 & nibbles, c2 & nibbles, c3 & nibbles);
        var (h0, h1, h2, h3) = (High512(c0), High512(c1), High512(c2), High512(c3));
        // The sixteen f16 scales times 2^-112, as HalfWidening.WidenFiniteUnscaled does eight (packed scales are finite).
        var scales = (Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(Vector256.Load((short*)(p + 256))), 13)
            & Vector512.Create(HalfWidening.FiniteBits)).AsSingle();
        if (n == 4)
        {
            // All four vectors' integer sums first, then their float steps: more independent work in flight.
            var i0 = Sum512(l0, l1, l2, l3, h0, h1, h2, h3, (long*)a);
            var i1 = Sum512(l0, l1, l2, l3, h0, h1, h2, h3, (long*)(a + ActBytes));
            var i2 = Sum512(l0, l1, l2, l3, h0, h1, h2, h3, (long*)(a + 2 * ActBytes));
            var i3 = Sum512(l0, l1, l2, l3, h0, h1, h2, h3, (long*)(a + 3 * ActBytes));
            s0 += Scaled512(i0, scales, (long*)a);
            s1 += Scaled512(i1, scales, (long*)(a + ActBytes));
            s2 += Scaled512(i2, scales, (long*)(a + 2 * ActBytes));
            s3 += Scaled512(i3, scales, (long*)(a + 3 * ActBytes));
            return;
        }
        s0 += Scaled512(Sum512(l0, l1, l2, l3, h0, h1, h2, h3, (long*)a), scales, (long*)a);
        if (n > 1) s1 += Scaled512(Sum512(l0, l1, l2, l3, h0, h1, h2, h3, (long*)(a + ActBytes)), scales, (long*)(a + ActBytes));
        if (n > 2) s2 += Scaled512(Sum512(l0, l1, l2, l3, h0, h1, h2, h3, (long*)(a + 2 * ActBytes)), scales, (long*)(a + 2 * ActBytes));
    }

    /// <summary>The high nibble of every byte: one affine transformation over GF(2) that shifts each byte right by 4
    /// (its matrix rows pick bits 4..7 for bits 0..3), where GFNI runs, else a shift and a mask.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> High512(Vector512<byte> c) => Gfni.V512.IsSupported
        ? Gfni.V512.GaloisFieldAffineTransform(c, Vector512.Create(0x1020408000000000UL).AsByte(), 0)
        : Vector512.ShiftRightLogical(c.AsUInt16(), 4).AsByte() & Vector512.Create((byte)0x0F);

    /// <summary>Asks for the 288 bytes of a block pair at p (4 KB ahead of the one being read) to be cached.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* p)
    {
        Sse.Prefetch0(p);
        Sse.Prefetch0(p + 64);
        Sse.Prefetch0(p + 128);
        Sse.Prefetch0(p + 192);
        Sse.Prefetch0(p + 256);
    }

    /// <summary>Lane 2j + h: row j's integer sum Σ q x - 8 Σ x of block 2P + h for the vector whose pair activations are at x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Sum512(Vector512<byte> l0, Vector512<byte> l1, Vector512<byte> l2, Vector512<byte> l3,
        Vector512<byte> h0, Vector512<byte> h1, Vector512<byte> h2, Vector512<byte> h3, long* x)
    {
        var sums = ((Avx512BW.MultiplyAddAdjacent(l0, Vector512.Create(x[0]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(l1, Vector512.Create(x[1]).AsSByte()))
            + (Avx512BW.MultiplyAddAdjacent(l2, Vector512.Create(x[2]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(l3, Vector512.Create(x[3]).AsSByte())))
            + ((Avx512BW.MultiplyAddAdjacent(h0, Vector512.Create(x[4]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h1, Vector512.Create(x[5]).AsSByte()))
            + (Avx512BW.MultiplyAddAdjacent(h2, Vector512.Create(x[6]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h3, Vector512.Create(x[7]).AsSByte())));
        return Avx512BW.MultiplyAddAdjacent(sums, Vector512.Create((short)1)) - Vector512.Create(x[9]).AsInt32();
    }

    /// <summary>Lane 2j + h: the term (dw * dx) * isum of block 2P + h, the vector's scales at x + 8.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Scaled512(Vector512<int> isum, Vector512<float> scales, long* x) =>
        scales * Vector512.Create(x[8]).AsSingle() * Vector512.ConvertToSingle(isum);

    /// <summary>Rows 0..7 of one vector from its two accumulators: lanes 2j, 2j + 1 of each are row j's a0, a1 (a2, a3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512(Vector512<float> even, Vector512<float> odd, float* y)
    {
        var split = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
        var e = Avx512F.PermuteVar16x32(even, split);
        var o = Avx512F.PermuteVar16x32(odd, split);
        ((e.GetLower() + e.GetUpper()) + (o.GetLower() + o.GetUpper())).Store(y);
    }

    /// <summary><see cref="Panel512"/> on 256-bit registers: each block pair as its two halves, rows 0..3 and 4..7,
    /// with the sixteen accumulators (vector, pair parity, half) in <paramref name="acc"/>, the carried state.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Panel256(byte* w, int pairs, byte* acts, int n, Vector256<float>* acc, bool first, bool last, float* y, int yStride)
    {
        if (first)
            for (int i = 0; i < 16; i++) acc[i] = default;
        int stride = n * ActBytes;
        for (int q = 0; q < pairs; q++)
        {
            byte* p = w + (long)q * PairBytes, a = acts + (long)q * stride;
            Prefetch(p + 4096);
            for (int half = 0; half < 2; half++)
            {
                byte* r = p + 32 * half;
                var (c0, c1, c2, c3) = (Vector256.Load(r), Vector256.Load(r + 64), Vector256.Load(r + 128), Vector256.Load(r + 192));
                var (l0, l1, l2, l3) = (Q4_0Octets.Low(c0), Q4_0Octets.Low(c1), Q4_0Octets.Low(c2), Q4_0Octets.Low(c3));
                var (h0, h1, h2, h3) = (Q4_0Octets.High(c0), Q4_0Octets.High(c1), Q4_0Octets.High(c2), Q4_0Octets.High(c3));
                var scales = HalfWidening.WidenFiniteUnscaled((ushort*)(p + 256 + 16 * half), HalfWidening.FiniteMask);
                var slot = acc + 2 * (q & 1) + half;
                for (int v = 0; v < n; v++)
                    slot[4 * v] += Term256(l0, l1, l2, l3, h0, h1, h2, h3, scales, (long*)(a + v * ActBytes));
            }
        }
        if (!last) return;
        for (int v = 0; v < n; v++)
            for (int half = 0; half < 2; half++)
            {
                var split = Vector256.Create(0, 2, 4, 6, 1, 3, 5, 7);
                var e = Avx2.PermuteVar8x32(acc[4 * v + half], split);
                var o = Avx2.PermuteVar8x32(acc[4 * v + 2 + half], split);
                ((e.GetLower() + e.GetUpper()) + (o.GetLower() + o.GetUpper())).Store(y + (long)v * yStride + 4 * half);
            }
    }

    /// <summary>On one 256-bit half, lane 2j + h: row 4 half + j's term (dw * dx) * (Σ q x - 8 Σ x) of block 2P + h.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Term256(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
        Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3, Vector256<float> scales, long* x)
    {
        var sums = ((Avx2.MultiplyAddAdjacent(l0, Vector256.Create(x[0]).AsSByte()) + Avx2.MultiplyAddAdjacent(l1, Vector256.Create(x[1]).AsSByte()))
            + (Avx2.MultiplyAddAdjacent(l2, Vector256.Create(x[2]).AsSByte()) + Avx2.MultiplyAddAdjacent(l3, Vector256.Create(x[3]).AsSByte())))
            + ((Avx2.MultiplyAddAdjacent(h0, Vector256.Create(x[4]).AsSByte()) + Avx2.MultiplyAddAdjacent(h1, Vector256.Create(x[5]).AsSByte()))
            + (Avx2.MultiplyAddAdjacent(h2, Vector256.Create(x[6]).AsSByte()) + Avx2.MultiplyAddAdjacent(h3, Vector256.Create(x[7]).AsSByte())));
        var isum = Avx2.MultiplyAddAdjacent(sums, Vector256.Create((short)1)) - Vector256.Create(x[9]).AsInt32();
        return scales * Vector256.Create(x[8]).AsSingle() * Vector256.ConvertToSingle(isum);
    }
}
