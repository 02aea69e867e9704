using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

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
