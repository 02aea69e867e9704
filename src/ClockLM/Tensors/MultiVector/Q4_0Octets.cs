using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

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
