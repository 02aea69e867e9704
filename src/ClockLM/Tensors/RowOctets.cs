using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Q4_0 rows eight at a time on AVX2, for products with enough vectors to pay for re-laying out the weights.
/// A block of eight rows is first interleaved: for each 32-value block, register k holds codes 4k..4k+3 of every
/// row (row j in bytes 4j..4j+3), plus the eight rows' scales. One vpmaddubsw with activations 4k..4k+3 broadcast
/// then works on all eight rows, the eight partial sums of a block add up in 16 bits (at most 8 * 2 * 15 * 127 =
/// 30480), and one vpmaddwd gives the eight rows' integer block dots, lane j for row j: no horizontal sums at all.
/// The float work per lane is that of <see cref="RowDots.Blocks32{TTerm, T}"/>: term (dw * dx) * isum of block b
/// added to accumulator b mod 4 in block order, result (a0 + a1) + (a2 + a3), so every row equals MatVec bit for bit.
/// </summary>
internal static unsafe class RowOctets
{
    /// <summary>Eight rows' blocks laid out one block octet after another, and the term of one block octet.</summary>
    public interface ITerm
    {
        /// <summary>Bytes one block of eight interleaved rows takes.</summary>
        static abstract int BlockBytes { get; }

        /// <summary>Lane j: row j's term of block b (interleaved at p) with vector a, as the format's RowDots term.</summary>
        static abstract Vector256<float> Term(byte* p, in RowDots.Act32 a, int b);
    }

    /// <summary>A block-octet layout whose terms can be computed for two vectors at once.</summary>
    public interface IPair : ITerm
    {
        /// <summary><see cref="ITerm.Term"/> of block b for vectors a and c.</summary>
        static abstract (Vector256<float>, Vector256<float>) Terms(byte* p, in RowDots.Act32 a, in RowDots.Act32 c, int b);
    }

    /// <summary>A 32-value block format whose rows can be interleaved eight at a time for one product.</summary>
    public interface IFormat : IPair
    {
        /// <summary>Lays out the eight rows at w, w + rowBytes, ... block by block into packed.</summary>
        static abstract void Interleave(byte* w, int rowBytes, int blocks, byte* packed);

        /// <summary>Rows that do not fill an octet.</summary>
        static abstract void Remainder(in MatMulJob job, int start, int end);
    }

    [ThreadStatic] private static byte[]? _interleaved;

    /// <summary>Rows [start, end) of the product: octets of rows interleaved once, the rest by the format's one-row path.</summary>
    public static void Rows<TFormat>(in MatMulJob job, int start, int end) where TFormat : struct, IFormat
    {
        int blockBytes = TFormat.BlockBytes;
        int blocks = job.Cols / 32, count = job.Count;
        int octets = (end - start) / 8;
        if (octets > 0)
        {
            var buffer = _interleaved;
            if (buffer is null || buffer.Length < blocks * blockBytes)
                _interleaved = buffer = GC.AllocateUninitializedArray<byte>(blocks * blockBytes, pinned: true);
            byte* packed = (byte*)Unsafe.AsPointer(ref buffer[0]);
            var acts = stackalloc RowDots.Act32[count];
            for (int t = 0; t < count; t++) acts[t] = new RowDots.Act32(job.Activations![t]);
            for (int o = 0; o < octets; o++)
            {
                int r0 = start + 8 * o;
                TFormat.Interleave(job.Weights + (long)r0 * job.RowBytes, job.RowBytes, blocks, packed);
                int t = 0;
                for (; t + 2 <= count; t += 2)
                    Pair<TFormat>(packed, blocks, acts[t], acts[t + 1], job.Y + (long)t * job.Rows + r0, job.Rows);
                for (; t < count; t++)
                    Octet<TFormat>(packed, blocks, acts[t], job.Y + (long)t * job.Rows + r0, prefetch: false);
            }
        }
        if (start + 8 * octets < end)
            TFormat.Remainder(job, start + 8 * octets, end);
    }

    /// <summary>Eight interleaved rows times one vector; row j's result into y[j]: block b's term into accumulator
    /// b mod 4 in block order, then (a0 + a1) + (a2 + a3). With <paramref name="prefetch"/> (octets streamed from
    /// memory rather than from a cache-resident buffer) the loop asks for the bytes 2 KB ahead.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Octet<TFormat>(byte* packed, int blocks, in RowDots.Act32 a, float* y, bool prefetch) where TFormat : struct, ITerm
    {
        int size = TFormat.BlockBytes;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int b = 0;
        for (; b + 4 <= blocks; b += 4)
        {
            byte* p = packed + (long)b * size;
            if (prefetch)
                for (int line = 0; line < 4 * size; line += 64) Sse.Prefetch0(p + 2048 + line);
            a0 += TFormat.Term(p, a, b);
            a1 += TFormat.Term(p + size, a, b + 1);
            a2 += TFormat.Term(p + 2 * size, a, b + 2);
            a3 += TFormat.Term(p + 3 * size, a, b + 3);
        }
        byte* q = packed + (long)b * size;
        if (b < blocks) a0 += TFormat.Term(q, a, b);
        if (b + 1 < blocks) a1 += TFormat.Term(q + size, a, b + 1);
        if (b + 2 < blocks) a2 += TFormat.Term(q + 2 * size, a, b + 2);
        ((a0 + a1) + (a2 + a3)).Store(y);
    }

    /// <summary><see cref="Octet"/> for two vectors at once, which share the loads of the weights; vector c's results
    /// go to y + yStride. The same float operations per vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Pair<TFormat>(byte* wide, int blocks, in RowDots.Act32 a, in RowDots.Act32 c, float* y, int yStride) where TFormat : struct, IPair
    {
        int size = TFormat.BlockBytes;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default;
        int b = 0;
        for (; b + 4 <= blocks; b += 4)
        {
            byte* p = wide + (long)b * size;
            var (ta, tc) = TFormat.Terms(p, a, c, b);
            (a0, c0) = (a0 + ta, c0 + tc);
            (ta, tc) = TFormat.Terms(p + size, a, c, b + 1);
            (a1, c1) = (a1 + ta, c1 + tc);
            (ta, tc) = TFormat.Terms(p + 2 * size, a, c, b + 2);
            (a2, c2) = (a2 + ta, c2 + tc);
            (ta, tc) = TFormat.Terms(p + 3 * size, a, c, b + 3);
            (a3, c3) = (a3 + ta, c3 + tc);
        }
        byte* q = wide + (long)b * size;
        for (int k = 0; b + k < blocks; k++)
        {
            var (ta, tc) = TFormat.Terms(q + k * size, a, c, b + k);
            if (k == 0) (a0, c0) = (a0 + ta, c0 + tc);
            else if (k == 1) (a1, c1) = (a1 + ta, c1 + tc);
            else (a2, c2) = (a2 + ta, c2 + tc);
        }
        ((a0 + a1) + (a2 + a3)).Store(y);
        ((c0 + c1) + (c2 + c3)).Store(y + yStride);
    }
}

/// <summary>Q4_0 octets: register k of a block holds codes 4k..4k+3 of every row; the eight vpmaddubsw partial sums
/// add in 16 bits (at most 30480), one vpmaddwd widens: term (dw * dx) * (Σ q x - 8 Σ x).</summary>
internal readonly unsafe struct Q4_0Octets : RowOctets.IFormat
{
    /// <summary>256 code bytes and 8 float scales.</summary>
    public static int BlockBytes => 256 + 32;

    public static void Remainder(in MatMulJob job, int start, int end) =>
        QuantizedTiles.Rows<QuantizedTiles.Q4_0Tile, RowDots.Q4_0Term>(job, start, end);

    /// <summary>Lays out rows w, w + rowBytes, ..., w + 7 rowBytes block by block as described above: the codes of a
    /// block are a 4x8 transpose of 32-bit words per nibble half (unpacks within 128-bit lanes, rows j and j + 4
    /// sharing a register), the scales one gather.</summary>
    public static void Interleave(byte* w, int rowBytes, int blocks, byte* packed)
    {
        var mask = Vector256.Create((byte)0x0F);
        for (int b = 0; b < blocks; b++, w += 18)
        {
            byte* dst = packed + (long)b * (256 + 32);
            // Y_j: the 16 code bytes of row j (low 128 bits) and of row j + 4 (high 128 bits).
            var y0 = Vector256.Create(Vector128.Load(w + 2), Vector128.Load(w + 4L * rowBytes + 2));
            var y1 = Vector256.Create(Vector128.Load(w + rowBytes + 2), Vector128.Load(w + 5L * rowBytes + 2));
            var y2 = Vector256.Create(Vector128.Load(w + 2L * rowBytes + 2), Vector128.Load(w + 6L * rowBytes + 2));
            var y3 = Vector256.Create(Vector128.Load(w + 3L * rowBytes + 2), Vector128.Load(w + 7L * rowBytes + 2));
            Transpose(y0 & mask, y1 & mask, y2 & mask, y3 & mask, dst);
            Transpose(Vector256.ShiftRightLogical(y0.AsUInt16(), 4).AsByte() & mask, Vector256.ShiftRightLogical(y1.AsUInt16(), 4).AsByte() & mask,
                Vector256.ShiftRightLogical(y2.AsUInt16(), 4).AsByte() & mask, Vector256.ShiftRightLogical(y3.AsUInt16(), 4).AsByte() & mask, dst + 128);
            QuantizedTiles.HalfScales(w, rowBytes).Store((float*)(dst + 256));
        }
    }

    /// <summary>Word k of rows 0..3 (low halves of y0..y3) and rows 4..7 (high halves) into register k at dst + 32 k.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Transpose(Vector256<byte> y0, Vector256<byte> y1, Vector256<byte> y2, Vector256<byte> y3, byte* dst)
    {
        var t0 = Avx2.UnpackLow(y0.AsInt32(), y1.AsInt32());   // r0w0 r1w0 r0w1 r1w1
        var t1 = Avx2.UnpackHigh(y0.AsInt32(), y1.AsInt32());  // r0w2 r1w2 r0w3 r1w3
        var t2 = Avx2.UnpackLow(y2.AsInt32(), y3.AsInt32());   // r2w0 r3w0 r2w1 r3w1
        var t3 = Avx2.UnpackHigh(y2.AsInt32(), y3.AsInt32());
        Avx2.UnpackLow(t0.AsInt64(), t2.AsInt64()).Store((long*)dst);
        Avx2.UnpackHigh(t0.AsInt64(), t2.AsInt64()).Store((long*)(dst + 32));
        Avx2.UnpackLow(t1.AsInt64(), t3.AsInt64()).Store((long*)(dst + 64));
        Avx2.UnpackHigh(t1.AsInt64(), t3.AsInt64()).Store((long*)(dst + 96));
    }

    /// <summary>Lane j: (dw_j * dx) * (Σ q x - 8 Σ x) of block b, for the eight rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Term(byte* p, in RowDots.Act32 a, int b)
    {
        int* x = (int*)(a.Qs + 32 * b);
        // A tree of additions (exact integers, every partial sum within the bound) keeps the dependency chains short.
        var s01 = Avx2.MultiplyAddAdjacent(Vector256.Load(p), Vector256.Create(x[0]).AsSByte())
            + Avx2.MultiplyAddAdjacent(Vector256.Load(p + 32), Vector256.Create(x[1]).AsSByte());
        var s23 = Avx2.MultiplyAddAdjacent(Vector256.Load(p + 64), Vector256.Create(x[2]).AsSByte())
            + Avx2.MultiplyAddAdjacent(Vector256.Load(p + 96), Vector256.Create(x[3]).AsSByte());
        var s45 = Avx2.MultiplyAddAdjacent(Vector256.Load(p + 128), Vector256.Create(x[4]).AsSByte())
            + Avx2.MultiplyAddAdjacent(Vector256.Load(p + 160), Vector256.Create(x[5]).AsSByte());
        var s67 = Avx2.MultiplyAddAdjacent(Vector256.Load(p + 192), Vector256.Create(x[6]).AsSByte())
            + Avx2.MultiplyAddAdjacent(Vector256.Load(p + 224), Vector256.Create(x[7]).AsSByte());
        var isum = Avx2.MultiplyAddAdjacent((s01 + s23) + (s45 + s67), Vector256.Create((short)1)) - Avx2.ShiftLeftLogical(Avx2.BroadcastScalarToVector256(a.Sum + b), 3);
        return Vector256.Load((float*)(p + 256)) * Vector256.Create(a.D[b]) * Vector256.ConvertToSingle(isum);
    }

    /// <summary><see cref="Term"/> of block b for vectors a and c, which share the loads of the codes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<float>, Vector256<float>) Terms(byte* p, in RowDots.Act32 a, in RowDots.Act32 c, int b) =>
        Terms(Vector256.Load(p), Vector256.Load(p + 32), Vector256.Load(p + 64), Vector256.Load(p + 96), Vector256.Load(p + 128),
            Vector256.Load(p + 160), Vector256.Load(p + 192), Vector256.Load(p + 224), Vector256.Load((float*)(p + 256)), a, c, b);

    /// <summary>The terms of block b for vectors a and c, given the block octet's eight code registers and scales.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<float>, Vector256<float>) Terms(Vector256<byte> w0, Vector256<byte> w1, Vector256<byte> w2, Vector256<byte> w3,
        Vector256<byte> w4, Vector256<byte> w5, Vector256<byte> w6, Vector256<byte> w7, Vector256<float> scales,
        in RowDots.Act32 a, in RowDots.Act32 c, int b)
    {
        int* x = (int*)(a.Qs + 32 * b);
        int* z = (int*)(c.Qs + 32 * b);
        var sx = (Avx2.MultiplyAddAdjacent(w0, Vector256.Create(x[0]).AsSByte()) + Avx2.MultiplyAddAdjacent(w1, Vector256.Create(x[1]).AsSByte()))
            + (Avx2.MultiplyAddAdjacent(w2, Vector256.Create(x[2]).AsSByte()) + Avx2.MultiplyAddAdjacent(w3, Vector256.Create(x[3]).AsSByte()));
        var sz = (Avx2.MultiplyAddAdjacent(w0, Vector256.Create(z[0]).AsSByte()) + Avx2.MultiplyAddAdjacent(w1, Vector256.Create(z[1]).AsSByte()))
            + (Avx2.MultiplyAddAdjacent(w2, Vector256.Create(z[2]).AsSByte()) + Avx2.MultiplyAddAdjacent(w3, Vector256.Create(z[3]).AsSByte()));
        sx += (Avx2.MultiplyAddAdjacent(w4, Vector256.Create(x[4]).AsSByte()) + Avx2.MultiplyAddAdjacent(w5, Vector256.Create(x[5]).AsSByte()))
            + (Avx2.MultiplyAddAdjacent(w6, Vector256.Create(x[6]).AsSByte()) + Avx2.MultiplyAddAdjacent(w7, Vector256.Create(x[7]).AsSByte()));
        sz += (Avx2.MultiplyAddAdjacent(w4, Vector256.Create(z[4]).AsSByte()) + Avx2.MultiplyAddAdjacent(w5, Vector256.Create(z[5]).AsSByte()))
            + (Avx2.MultiplyAddAdjacent(w6, Vector256.Create(z[6]).AsSByte()) + Avx2.MultiplyAddAdjacent(w7, Vector256.Create(z[7]).AsSByte()));
        var ones = Vector256.Create((short)1);
        var tx = scales * Vector256.Create(a.D[b]) * Vector256.ConvertToSingle(Avx2.MultiplyAddAdjacent(sx, ones) - Avx2.ShiftLeftLogical(Avx2.BroadcastScalarToVector256(a.Sum + b), 3));
        var tz = scales * Vector256.Create(c.D[b]) * Vector256.ConvertToSingle(Avx2.MultiplyAddAdjacent(sz, ones) - Avx2.ShiftLeftLogical(Avx2.BroadcastScalarToVector256(c.Sum + b), 3));
        return (tx, tz);
    }
}

/// <summary>Q8_0 octets: register k of a block holds bytes 4k..4k+3 of every row (magnitudes times the activations'
/// signs flipped by the weights', as vpmaddubsw needs one unsigned operand); pair sums reach 2 * 128 * 127, so each
/// vpmaddubsw is widened by its own vpmaddwd: term (dw * dx) * Σ q x.</summary>
internal readonly unsafe struct Q8_0Octets : RowOctets.IFormat
{
    /// <summary>256 weight bytes and 8 float scales (a block octet and the activations stay within the first-level cache).</summary>
    public static int BlockBytes => 256 + 32;

    public static void Remainder(in MatMulJob job, int start, int end) =>
        QuantizedTiles.Rows<QuantizedTiles.Q8_0Tile, RowDots.Q8_0Term>(job, start, end);

    public static void Interleave(byte* w, int rowBytes, int blocks, byte* packed)
    {
        for (int b = 0; b < blocks; b++, w += 34)
        {
            byte* dst = packed + (long)b * (256 + 32);
            TransposeWords(w + 2, rowBytes, dst);
            QuantizedTiles.HalfScales(w, rowBytes).Store((float*)(dst + 256));
        }
    }

    /// <summary>The 32 bytes at w, w + rowBytes, ..., w + 7 rowBytes as eight registers at dst: register k holds word k
    /// of each row, row j in bytes 4j..4j+3.</summary>
    public static void TransposeWords(byte* w, int rowBytes, byte* dst)
    {
        var r0 = Vector256.Load(w).AsInt32();
        var r1 = Vector256.Load(w + rowBytes).AsInt32();
        var r2 = Vector256.Load(w + 2L * rowBytes).AsInt32();
        var r3 = Vector256.Load(w + 3L * rowBytes).AsInt32();
        var r4 = Vector256.Load(w + 4L * rowBytes).AsInt32();
        var r5 = Vector256.Load(w + 5L * rowBytes).AsInt32();
        var r6 = Vector256.Load(w + 6L * rowBytes).AsInt32();
        var r7 = Vector256.Load(w + 7L * rowBytes).AsInt32();
        var t0 = Avx2.UnpackLow(r0, r1).AsInt64();
        var t1 = Avx2.UnpackHigh(r0, r1).AsInt64();
        var t2 = Avx2.UnpackLow(r2, r3).AsInt64();
        var t3 = Avx2.UnpackHigh(r2, r3).AsInt64();
        var t4 = Avx2.UnpackLow(r4, r5).AsInt64();
        var t5 = Avx2.UnpackHigh(r4, r5).AsInt64();
        var t6 = Avx2.UnpackLow(r6, r7).AsInt64();
        var t7 = Avx2.UnpackHigh(r6, r7).AsInt64();
        // u_k: word k (low 128 bits) and word k + 4 (high) of rows 0..3, v_k the same for rows 4..7.
        var u0 = Avx2.UnpackLow(t0, t2); var u1 = Avx2.UnpackHigh(t0, t2);
        var u2 = Avx2.UnpackLow(t1, t3); var u3 = Avx2.UnpackHigh(t1, t3);
        var v0 = Avx2.UnpackLow(t4, t6); var v1 = Avx2.UnpackHigh(t4, t6);
        var v2 = Avx2.UnpackLow(t5, t7); var v3 = Avx2.UnpackHigh(t5, t7);
        Store(Avx2.Permute2x128(u0, v0, 0x20), dst, 0);
        Store(Avx2.Permute2x128(u1, v1, 0x20), dst, 1);
        Store(Avx2.Permute2x128(u2, v2, 0x20), dst, 2);
        Store(Avx2.Permute2x128(u3, v3, 0x20), dst, 3);
        Store(Avx2.Permute2x128(u0, v0, 0x31), dst, 4);
        Store(Avx2.Permute2x128(u1, v1, 0x31), dst, 5);
        Store(Avx2.Permute2x128(u2, v2, 0x31), dst, 6);
        Store(Avx2.Permute2x128(u3, v3, 0x31), dst, 7);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Vector256<long> k, byte* dst, int index) => k.AsByte().Store(dst + 32 * index);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Term(byte* p, in RowDots.Act32 a, int b)
    {
        return Vector256.Load((float*)(p + 256)) * Vector256.Create(a.D[b]) * Vector256.ConvertToSingle(Sum(p, (int*)(a.Qs + 32 * b)));
    }

    /// <summary>Lane j: the integer dot of row j's 32 codes (interleaved at p) with the activation words x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Sum(byte* p, int* x) =>
        ((Dot(p, x, 0) + Dot(p, x, 1)) + (Dot(p, x, 2) + Dot(p, x, 3))) + ((Dot(p, x, 4) + Dot(p, x, 5)) + (Dot(p, x, 6) + Dot(p, x, 7)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Dot(byte* p, int* x, int k)
    {
        var w = Vector256.Load((sbyte*)p + 32 * k);
        return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(Vector256.Create(x[k]).AsSByte(), w)), Vector256.Create((short)1));
    }

    /// <summary><see cref="Term"/> of block b for vectors a and c, which share the loads and magnitudes of the weights.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<float>, Vector256<float>) Terms(byte* p, in RowDots.Act32 a, in RowDots.Act32 c, int b) =>
        Terms(p, Vector256.Load((float*)(p + 256)), a, c, b);

    /// <summary>The terms of block b for vectors a and c, given the block octet's scales.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<float>, Vector256<float>) Terms(byte* p, Vector256<float> scales, in RowDots.Act32 a, in RowDots.Act32 c, int b)
    {
        int* x = (int*)(a.Qs + 32 * b);
        int* z = (int*)(c.Qs + 32 * b);
        var ones = Vector256.Create((short)1);
        Vector256<int> sx = default, sz = default;
        for (int k = 0; k < 8; k += 2)
        {
            var w0 = Vector256.Load((sbyte*)p + 32 * k);
            var w1 = Vector256.Load((sbyte*)p + 32 * k + 32);
            var m0 = Avx2.Abs(w0);
            var m1 = Avx2.Abs(w1);
            sx += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(m0, Avx2.Sign(Vector256.Create(x[k]).AsSByte(), w0)), ones)
                + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(m1, Avx2.Sign(Vector256.Create(x[k + 1]).AsSByte(), w1)), ones);
            sz += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(m0, Avx2.Sign(Vector256.Create(z[k]).AsSByte(), w0)), ones)
                + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(m1, Avx2.Sign(Vector256.Create(z[k + 1]).AsSByte(), w1)), ones);
        }
        return (scales * Vector256.Create(a.D[b]) * Vector256.ConvertToSingle(sx), scales * Vector256.Create(c.D[b]) * Vector256.ConvertToSingle(sz));
    }
}
