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

    [ThreadStatic] private static byte[]? _buffer;

    /// <summary>The calling thread's buffer for one octet of rows laid out for a product (at least <paramref name="bytes"/>).</summary>
    public static byte* Buffer(int bytes)
    {
        var buffer = _buffer;
        if (buffer is null || buffer.Length < bytes)
            _buffer = buffer = GC.AllocateUninitializedArray<byte>(bytes, pinned: true);
        return (byte*)Unsafe.AsPointer(ref buffer[0]);
    }

    /// <summary>Rows [start, end) of the product: octets of rows interleaved once, the rest by the format's one-row path.</summary>
    public static void Rows<TFormat>(in MatMulJob job, int start, int end) where TFormat : struct, IFormat
    {
        int blocks = job.Cols / 32, count = job.Count;
        int octets = (end - start) / 8;
        if (octets > 0)
        {
            byte* packed = Buffer(blocks * TFormat.BlockBytes);
            var acts = stackalloc RowDots.Act32[count];
            for (int t = 0; t < count; t++) acts[t] = new RowDots.Act32(job.Activations![t]);
            for (int o = 0; o < octets; o++)
            {
                int r0 = start + 8 * o;
                TFormat.Interleave(job.Weights + (long)r0 * job.RowBytes, job.RowBytes, blocks, packed);
                Vectors<TFormat>(packed, blocks, acts, count, job.Y + r0, job.Rows, prefetch: false);
            }
        }
        if (start + 8 * octets < end)
            TFormat.Remainder(job, start + 8 * octets, end);
    }

    /// <summary>One octet of rows times every vector, two at a time: vector t's eight results into y + t * rows.</summary>
    public static void Vectors<T>(byte* octet, int blocks, RowDots.Act32* acts, int count, float* y, int rows, bool prefetch)
        where T : struct, IPair
    {
        int t = 0;
        for (; t + 2 <= count; t += 2)
            Pair<T>(octet, blocks, acts[t], acts[t + 1], y + (long)t * rows, rows);
        for (; t < count; t++)
            Octet<T>(octet, blocks, acts[t], y + (long)t * rows, prefetch);
    }

    /// <summary>
    /// Lane pairs of Σ_k vpmaddubsw(c_k, word k of x) for eight registers of codes of at most 4 bits (Q4_0, Q4_K):
    /// each pair sum is at most 2 * 15 * 127 = 3810 in magnitude, so every partial sum of the eight, in any order,
    /// stays within 16 bits (at most 30480). Added as a tree, which keeps the dependency chains short.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> CodeSums(Vector256<byte> c0, Vector256<byte> c1, Vector256<byte> c2, Vector256<byte> c3,
        Vector256<byte> c4, Vector256<byte> c5, Vector256<byte> c6, Vector256<byte> c7, int* x) =>
        ((Avx2.MultiplyAddAdjacent(c0, Vector256.Create(x[0]).AsSByte()) + Avx2.MultiplyAddAdjacent(c1, Vector256.Create(x[1]).AsSByte()))
        + (Avx2.MultiplyAddAdjacent(c2, Vector256.Create(x[2]).AsSByte()) + Avx2.MultiplyAddAdjacent(c3, Vector256.Create(x[3]).AsSByte())))
        + ((Avx2.MultiplyAddAdjacent(c4, Vector256.Create(x[4]).AsSByte()) + Avx2.MultiplyAddAdjacent(c5, Vector256.Create(x[5]).AsSByte()))
        + (Avx2.MultiplyAddAdjacent(c6, Vector256.Create(x[6]).AsSByte()) + Avx2.MultiplyAddAdjacent(c7, Vector256.Create(x[7]).AsSByte())));

    /// <summary><see cref="CodeSums(Vector256{byte}, Vector256{byte}, Vector256{byte}, Vector256{byte}, Vector256{byte}, Vector256{byte}, Vector256{byte}, Vector256{byte}, int*)"/>
    /// of the eight code registers at c, c + 32, ..., c + 224.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> CodeSums(byte* c, int* x) =>
        CodeSums(Vector256.Load(c), Vector256.Load(c + 32), Vector256.Load(c + 64), Vector256.Load(c + 96),
            Vector256.Load(c + 128), Vector256.Load(c + 160), Vector256.Load(c + 192), Vector256.Load(c + 224), x);

    /// <summary>Eight interleaved rows times one vector; row j's result into y[j]: block b's term into accumulator
    /// b mod 4 in block order, then (a0 + a1) + (a2 + a3). With <paramref name="prefetch"/> (octets streamed from
    /// memory rather than from a cache-resident buffer) the loop asks for the bytes 4 KB ahead.</summary>
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
                for (int line = 0; line < 4 * size; line += 64) Sse.Prefetch0(p + 4096 + line);
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
    /// block are transposed as 32-bit words of packed nibbles (<see cref="TransposeCodes"/>), then split into their
    /// low and high nibbles in place (<see cref="WidenCodes"/>); the scales are one gather.</summary>
    public static void Interleave(byte* w, int rowBytes, int blocks, byte* packed)
    {
        for (int b = 0; b < blocks; b++, w += 18)
        {
            byte* dst = packed + (long)b * (256 + 32);
            TransposeCodes(w, rowBytes, dst);
            WidenCodes(dst, dst);
            QuantizedTiles.HalfScales(w, rowBytes).Store((float*)(dst + 256));
        }
    }

    /// <summary>The 16 code bytes of the block at w, w + rowBytes, ..., w + 7 rowBytes (after each f16 scale) as four
    /// registers of packed nibbles at dst: register m holds word m of each row, row j in bytes 4j..4j+3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void TransposeCodes(byte* w, int rowBytes, byte* dst)
    {
        // Y_j: the 16 code bytes of row j (low 128 bits) and of row j + 4 (high 128 bits).
        var y0 = Vector256.Create(Vector128.Load(w + 2), Vector128.Load(w + 4L * rowBytes + 2));
        var y1 = Vector256.Create(Vector128.Load(w + rowBytes + 2), Vector128.Load(w + 5L * rowBytes + 2));
        var y2 = Vector256.Create(Vector128.Load(w + 2L * rowBytes + 2), Vector128.Load(w + 6L * rowBytes + 2));
        var y3 = Vector256.Create(Vector128.Load(w + 3L * rowBytes + 2), Vector128.Load(w + 7L * rowBytes + 2));
        Transpose(y0, y1, y2, y3, dst);
    }

    /// <summary>Four registers of packed nibbles at <paramref name="nibbles"/> as eight registers of codes at
    /// <paramref name="wide"/>: register m's low nibbles (codes 4m..4m+3) at wide + 32 m, its high nibbles (codes
    /// 16+4m..16+4m+3) at wide + 128 + 32 m. The two may be the same place.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void WidenCodes(byte* nibbles, byte* wide)
    {
        for (int m = 0; m < 4; m++)
        {
            var p = Vector256.Load(nibbles + 32 * m);
            Low(p).Store(wide + 32 * m);
            High(p).Store(wide + 128 + 32 * m);
        }
    }

    /// <summary>The low nibbles of each byte.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> Low(Vector256<byte> p) => p & Vector256.Create((byte)0x0F);

    /// <summary>The high nibbles of each byte.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> High(Vector256<byte> p) => Vector256.ShiftRightLogical(p.AsUInt16(), 4).AsByte() & Vector256.Create((byte)0x0F);

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
    public static Vector256<float> Term(byte* p, in RowDots.Act32 a, int b) =>
        Term(RowOctets.CodeSums(p, (int*)(a.Qs + 32 * b)), Vector256.Load((float*)(p + 256)), a, b);

    /// <summary>The term of block b for vector a, given the block's code sums (<see cref="RowOctets.CodeSums(byte*, int*)"/>
    /// with a's words) and the rows' scales: (dw_j * dx) * (Σ q x - 8 Σ x).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Term(Vector256<short> sums, Vector256<float> scales, in RowDots.Act32 a, int b)
    {
        var isum = Avx2.MultiplyAddAdjacent(sums, Vector256.Create((short)1)) - Avx2.ShiftLeftLogical(Avx2.BroadcastScalarToVector256(a.Sum + b), 3);
        return scales * Vector256.Create(a.D[b]) * Vector256.ConvertToSingle(isum);
    }

    /// <summary><see cref="Term(byte*, in RowDots.Act32, int)"/> of block b for vectors a and c, which share the loads of the codes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<float>, Vector256<float>) Terms(byte* p, in RowDots.Act32 a, in RowDots.Act32 c, int b) =>
        Terms(Vector256.Load(p), Vector256.Load(p + 32), Vector256.Load(p + 64), Vector256.Load(p + 96), Vector256.Load(p + 128),
            Vector256.Load(p + 160), Vector256.Load(p + 192), Vector256.Load(p + 224), Vector256.Load((float*)(p + 256)), a, c, b);

    /// <summary>The terms of block b for vectors a and c, given the block octet's eight code registers and scales.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<float>, Vector256<float>) Terms(Vector256<byte> w0, Vector256<byte> w1, Vector256<byte> w2, Vector256<byte> w3,
        Vector256<byte> w4, Vector256<byte> w5, Vector256<byte> w6, Vector256<byte> w7, Vector256<float> scales,
        in RowDots.Act32 a, in RowDots.Act32 c, int b) =>
        (Term(RowOctets.CodeSums(w0, w1, w2, w3, w4, w5, w6, w7, (int*)(a.Qs + 32 * b)), scales, a, b),
         Term(RowOctets.CodeSums(w0, w1, w2, w3, w4, w5, w6, w7, (int*)(c.Qs + 32 * b)), scales, c, b));
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

    /// <summary>Register k at p times x word k: the codes loaded once for their magnitudes and their signs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Dot(byte* p, int* x, int k)
    {
        var w = Vector256.Load((sbyte*)p + 32 * k);
        return Dot(w, Avx2.Abs(w), x[k]);
    }

    /// <summary><see cref="Sum(byte*, int*)"/> given the registers' magnitudes m0..m7 (shared by several vectors) and
    /// the codes at w for their signs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Sum(Vector256<byte> m0, Vector256<byte> m1, Vector256<byte> m2, Vector256<byte> m3,
        Vector256<byte> m4, Vector256<byte> m5, Vector256<byte> m6, Vector256<byte> m7, sbyte* w, int* x) =>
        ((Dot(Vector256.Load(w), m0, x[0]) + Dot(Vector256.Load(w + 32), m1, x[1]))
        + (Dot(Vector256.Load(w + 64), m2, x[2]) + Dot(Vector256.Load(w + 96), m3, x[3])))
        + ((Dot(Vector256.Load(w + 128), m4, x[4]) + Dot(Vector256.Load(w + 160), m5, x[5]))
        + (Dot(Vector256.Load(w + 192), m6, x[6]) + Dot(Vector256.Load(w + 224), m7, x[7])));

    /// <summary>Lane sums of one code register: its magnitudes times the activation word x with the codes' signs, widened
    /// to 32 bits (each vpmaddubsw pair sum reaches 2 * 128 * 127, so it gets its own vpmaddwd).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Dot(Vector256<sbyte> codes, Vector256<byte> magnitudes, int x) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitudes, Avx2.Sign(Vector256.Create(x).AsSByte(), codes)), Vector256.Create((short)1));

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
        Vector256<int> sx = default, sz = default;
        for (int k = 0; k < 8; k += 2)
        {
            var w0 = Vector256.Load((sbyte*)p + 32 * k);
            var w1 = Vector256.Load((sbyte*)p + 32 * k + 32);
            var m0 = Avx2.Abs(w0);
            var m1 = Avx2.Abs(w1);
            sx += Dot(w0, m0, x[k]) + Dot(w1, m1, x[k + 1]);
            sz += Dot(w0, m0, z[k]) + Dot(w1, m1, z[k + 1]);
        }
        return (scales * Vector256.Create(a.D[b]) * Vector256.ConvertToSingle(sx), scales * Vector256.Create(c.D[b]) * Vector256.ConvertToSingle(sz));
    }
}
