using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Q8_0 weights packed eight rows at a time (<see cref="PackedRows"/>): a block octet holds, for one 32-value block of
/// eight rows, eight registers of code bytes (register k: word k of the 32 code bytes of rows 0..7) followed by the
/// eight f16 scales, 256 + 16 bytes, exactly the bytes of the eight rows; octet o's blocks follow each other, octets
/// follow each other. Its products: four vectors at a time (<see cref="Quad"/>) on activations laid out four vectors per
/// block (<see cref="LayOutQuads"/>), one or two at a time through <see cref="RowOctets"/>.
/// </summary>
internal readonly unsafe struct Q8_0Packed : RowOctets.ITwoVectorTerms
{
    public static int BlockBytes => 256 + 16;

    public static void Pack(byte* w, int rowBytes, int blocks, byte* packed)
    {
        for (int b = 0; b < blocks; b++, w += 34, packed += BlockBytes)
        {
            Q8_0Octets.TransposeWords(w + 2, rowBytes, packed);
            PackScales(w, rowBytes, packed + 256);
        }
    }

    /// <summary>The terms of block b for vectors a and c (the per-product octet's two-vector terms, with half-precision scales).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector256<float>, Vector256<float>) Terms(byte* p, in RowDots.Act32 a, in RowDots.Act32 c, int b) =>
        Q8_0Octets.Terms(p, Scales(p + 256), a, c, b);

    /// <summary>
    /// One packed octet times four vectors, which share each block's weight magnitudes (eight registers) and scales;
    /// the weights' signs go onto each vector's activations (vpsignb reads the codes from memory), and every
    /// vpmaddubsw is widened by its own vpmaddwd, as <see cref="Q8_0Octets.Sum(byte*, int*)"/> does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Quad(byte* octet, int blocks, byte* quadActs, float* y, int yStride)
    {
        var acc = stackalloc Vector256<float>[16];
        ClearAccumulators(acc);
        for (int b = 0; b < blocks; b++)
        {
            byte* p = octet + (long)b * BlockBytes, a = quadActs + (long)b * QuadBlockBytes;
            for (int line = 0; line < BlockBytes; line += 64) Sse.Prefetch0(p + 4096 + line);
            var m0 = Avx2.Abs(Vector256.Load((sbyte*)p)); var m1 = Avx2.Abs(Vector256.Load((sbyte*)p + 32));
            var m2 = Avx2.Abs(Vector256.Load((sbyte*)p + 64)); var m3 = Avx2.Abs(Vector256.Load((sbyte*)p + 96));
            var m4 = Avx2.Abs(Vector256.Load((sbyte*)p + 128)); var m5 = Avx2.Abs(Vector256.Load((sbyte*)p + 160));
            var m6 = Avx2.Abs(Vector256.Load((sbyte*)p + 192)); var m7 = Avx2.Abs(Vector256.Load((sbyte*)p + 224));
            var scales = Scales(p + 256);
            var slot = acc + (b & 3);
            slot[0] += QuadTerm(m0, m1, m2, m3, m4, m5, m6, m7, (sbyte*)p, scales, a, 0);
            slot[4] += QuadTerm(m0, m1, m2, m3, m4, m5, m6, m7, (sbyte*)p, scales, a, 1);
            slot[8] += QuadTerm(m0, m1, m2, m3, m4, m5, m6, m7, (sbyte*)p, scales, a, 2);
            slot[12] += QuadTerm(m0, m1, m2, m3, m4, m5, m6, m7, (sbyte*)p, scales, a, 3);
        }
        StoreAccumulators(acc, y, yStride);
    }

    /// <summary>Vector v's term of a block: the integer sum of <see cref="Q8_0Octets.Sum(byte*, int*)"/> and the float
    /// operations of <see cref="Term"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> QuadTerm(Vector256<byte> m0, Vector256<byte> m1, Vector256<byte> m2, Vector256<byte> m3,
        Vector256<byte> m4, Vector256<byte> m5, Vector256<byte> m6, Vector256<byte> m7, sbyte* w, Vector256<float> scales, byte* a, int v)
    {
        var isum = Q8_0Octets.Sum(m0, m1, m2, m3, m4, m5, m6, m7, w, (int*)(a + 32 * v));
        return scales * Vector256.Create(((float*)(a + 128))[v]) * Vector256.ConvertToSingle(isum);
    }

    /// <summary>Lane j: (dw_j * dx) * Σ q x of block b, as <see cref="Q8_0Octets.Term"/> on the per-product octet.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Term(byte* p, in RowDots.Act32 a, int b) =>
        Scales(p + 256) * Vector256.Create(a.D[b]) * Vector256.ConvertToSingle(Q8_0Octets.Sum(p, (int*)(a.Qs + 32 * b)));

    /// <summary>Bytes of one block of four vectors' activations as <see cref="Q8_0Packed.Quad"/> reads them: the four
    /// vectors' 32 codes, then their four scales (times 2^112, <see cref="ActivationBlocks.DUp"/>), then their four code
    /// sums times 8.</summary>
    public const int QuadBlockBytes = 4 * 32 + 16 + 16;

    /// <summary>Bytes <see cref="LayOutQuads"/> writes for <paramref name="count"/> vectors of <paramref name="cols"/> values.</summary>
    public static long QuadBytes(int count, int cols) => (long)(count / 4) * (cols / 32) * QuadBlockBytes;

    /// <summary>Vectors 4q..4q+3 of every whole group of four, block by block, in the layout of
    /// <see cref="QuadBlockBytes"/> at <paramref name="dst"/>: one pointer then reaches everything a block needs.</summary>
    public static void LayOutQuads(ActivationBlocks[] activations, int count, int cols, byte* dst)
    {
        int quads = count / 4, blocks = cols / 32;
        byte* p = dst;
        for (int q = 0; q < quads; q++)
            for (int b = 0; b < blocks; b++, p += QuadBlockBytes)
                for (int v = 0; v < 4; v++)
                {
                    var a = new RowDots.Act32(activations[4 * q + v], scaledUp: true);
                    Vector256.Load(a.Qs + 32 * b).Store((sbyte*)p + 32 * v);
                    ((float*)(p + 128))[v] = a.D[b];
                    ((int*)(p + 144))[v] = a.Sum[b] << 3;
                }
    }

    /// <summary>The sixteen accumulators of a four-vector product (vector t, block b mod 4 at 4 t + b mod 4), zeroed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ClearAccumulators(Vector256<float>* acc)
    {
        for (int i = 0; i < 16; i++) acc[i] = default;
    }

    /// <summary>Vector t's eight results of a four-vector product: (a0 + a1) + (a2 + a3), as <see cref="RowOctets.OneVector"/> ends.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreAccumulators(Vector256<float>* acc, float* y, int yStride)
    {
        for (int t = 0; t < 4; t++)
            ((acc[4 * t] + acc[4 * t + 1]) + (acc[4 * t + 2] + acc[4 * t + 3])).Store(y + (long)t * yStride);
    }

    /// <summary>
    /// The eight f16 scales at p as floats times 2^-112 (<see cref="HalfWidening.WidenFiniteUnscaled"/>, three
    /// operations). The activations' scales come times 2^112 (<see cref="ActivationBlocks.DUp"/>), so every product of
    /// the two is the exact product of the true scales, rounded once, as in <see cref="MatVec"/>. Infinite and NaN scales
    /// would come out finite: matrices with such scales are not packed (<see cref="PackedRows.PackOctets"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Scales(byte* p) => HalfWidening.WidenFiniteUnscaled((ushort*)p, HalfWidening.FiniteMask);

    /// <summary>The f16 scales of the eight rows' blocks at w, w + rowBytes, ... into p.</summary>
    private static void PackScales(byte* w, int rowBytes, byte* p)
    {
        for (int j = 0; j < 8; j++) ((ushort*)p)[j] = *(ushort*)(w + (long)j * rowBytes);
    }
}
