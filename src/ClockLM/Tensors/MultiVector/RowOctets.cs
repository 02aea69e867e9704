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
    public interface ITwoVectorTerms : ITerm
    {
        /// <summary><see cref="ITerm.Term"/> of block b for vectors a and c.</summary>
        static abstract (Vector256<float>, Vector256<float>) Terms(byte* p, in RowDots.Act32 a, in RowDots.Act32 c, int b);
    }

    /// <summary>A 32-value block format whose rows can be interleaved eight at a time for one product.</summary>
    public interface IFormat : ITwoVectorTerms
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
        where T : struct, ITwoVectorTerms
    {
        int t = 0;
        for (; t + 2 <= count; t += 2)
            TwoVectors<T>(octet, blocks, acts[t], acts[t + 1], y + (long)t * rows, rows);
        for (; t < count; t++)
            OneVector<T>(octet, blocks, acts[t], y + (long)t * rows, prefetch);
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
    public static void OneVector<TFormat>(byte* packed, int blocks, in RowDots.Act32 a, float* y, bool prefetch) where TFormat : struct, ITerm
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

    /// <summary><see cref="OneVector"/> for two vectors at once, which share the loads of the weights; vector c's results
    /// go to y + yStride. The same float operations per vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void TwoVectors<TFormat>(byte* wide, int blocks, in RowDots.Act32 a, in RowDots.Act32 c, float* y, int yStride) where TFormat : struct, ITwoVectorTerms
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
