using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Q4_K and Q6_K rows eight at a time on AVX2, for products with enough vectors to pay for re-laying out the weights
/// (what <see cref="RowOctets"/> does for Q4_0 and Q8_0). Each super-block of eight rows is interleaved once into a
/// small buffer: for every 32 values, register k holds codes 4k..4k+3 of every row (row j in bytes 4j..4j+3), and the
/// rows' sub-block scales are spread so lane j carries row j's scale. One vpmaddubsw with four broadcast activations
/// then works on all eight rows and one vpmaddwd applies the eight rows' scales: lane j ends with row j's exact integer
/// sums, no horizontal sums at all. Every vector goes through the buffered super-block while it is in the first-level
/// cache; per row the float step is that of the one-vector kernel, one accumulator per row, super-blocks in order:
/// Q4_K acc += d * dx * isum - dmin * dx * msum (<see cref="RowDots.Q4_K{T}"/>), Q6_K acc += d * dx * isum
/// (<see cref="RowDots.Q6_K{T}"/>), so every row equals MatVec bit for bit.
/// </summary>
internal static unsafe class KQuantOctets
{
    /// <summary>Q4_K: codes (8 sub-blocks x 8 registers), scales (8 registers, lane j = row j's scale twice as shorts),
    /// mins (8 registers, likewise), d and dmin (8 floats each).</summary>
    private const int Q4_KBytes = 2048 + 256 + 256 + 64;

    /// <summary>Q6_K: codes (8 x 8 registers), group scales (16 registers, lane j = row j's scale twice), scale pairs
    /// (8 registers, lane j = row j's scales 2i and 2i + 1, for Σ sc bsums), d (8 floats).</summary>
    private const int Q6_KBytes = 2048 + 512 + 256 + 32;

    public static void Q4_KRows(in MatMulJob job, int start, int end) => Rows(job, start, end, q6: false);

    public static void Q6_KRows(in MatMulJob job, int start, int end) => Rows(job, start, end, q6: true);

    private static void Rows(in MatMulJob job, int start, int end, bool q6)
    {
        int count = job.Count, blocks = job.Cols / 256;
        int octets = (end - start) / 8;
        if (octets > 0)
        {
            var qs = stackalloc sbyte*[count];
            var dx = stackalloc float*[count];
            var bsums = stackalloc short*[count];
            KQuantTiles.Pointers(job.Activations!, count, qs, dx, bsums);
            var acc = stackalloc Vector256<float>[count];
            byte* packed = stackalloc byte[Q6_KBytes + 32];
            packed = (byte*)(((nint)packed + 31) & ~(nint)31);
            for (int o = 0; o < octets; o++)
            {
                int r0 = start + 8 * o;
                byte* w = job.Weights + (long)r0 * job.RowBytes;
                for (int t = 0; t < count; t++) acc[t] = Vector256<float>.Zero;
                for (int b = 0; b < blocks; b++)
                {
                    // Four vectors at a time share each sub-block's code registers; the last one to three go alone.
                    int t = 0;
                    if (q6)
                    {
                        InterleaveQ6_K(w + 210L * b, job.RowBytes, packed);
                        for (; t + 4 <= count; t += 4) Q6_KQuad(packed, qs + t, bsums + t, dx + t, b, acc + t);
                        for (; t < count; t++)
                            acc[t] += Q6_KTerm(packed, qs[t] + 256 * b, bsums[t] + 16 * b, dx[t][b]);
                    }
                    else
                    {
                        InterleaveQ4_K(w + 144L * b, job.RowBytes, packed);
                        for (; t + 4 <= count; t += 4) Q4_KQuad(packed, qs + t, bsums + t, dx + t, b, acc + t);
                        for (; t < count; t++)
                            acc[t] += Q4_KTerm(packed, qs[t] + 256 * b, bsums[t] + 16 * b, dx[t][b]);
                    }
                }
                for (int t = 0; t < count; t++) acc[t].Store(job.Y + (long)t * job.Rows + r0);
            }
        }
        if (start + 8 * octets < end)
        {
            if (q6) KQuantTiles.Q6_KRows(job, start + 8 * octets, end);
            else KQuantTiles.Q4_KRows(job, start + 8 * octets, end);
        }
    }

    /// <summary>Lane j: d_j * dx * isum_j - dmin_j * dx * msum_j of one super-block for row j of the octet.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q4_KTerm(byte* p, sbyte* x, short* bsums, float dx)
    {
        var isum = Vector256<int>.Zero;
        for (int j = 0; j < 8; j++)
        {
            // Eight partial sums of a sub-block add up in 16 bits: at most 8 * 2 * 15 * 127 = 30480.
            var s = RowOctets.CodeSums(p + 256 * j, (int*)(x + 32 * j));
            isum += Avx2.MultiplyAddAdjacent(s, Vector256.Load((short*)(p + 2048 + 32 * j)));
        }
        return Q4_KFinish(p, isum, bsums, dx);
    }

    /// <summary><see cref="Q4_KTerm"/> of super-block b for vectors 0..3 (their values, group sums and scales at qs,
    /// bsums, dx), added to acc[0..3]: each sub-block's eight code registers are loaded once for the four.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q4_KQuad(byte* p, sbyte** qs, short** bsums, float** dx, int b, Vector256<float>* acc)
    {
        sbyte* x0 = qs[0] + 256 * b, x1 = qs[1] + 256 * b, x2 = qs[2] + 256 * b, x3 = qs[3] + 256 * b;
        Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
        for (int j = 0; j < 8; j++)
        {
            byte* c = p + 256 * j;
            var (c0, c1, c2, c3) = (Vector256.Load(c), Vector256.Load(c + 32), Vector256.Load(c + 64), Vector256.Load(c + 96));
            var (c4, c5, c6, c7) = (Vector256.Load(c + 128), Vector256.Load(c + 160), Vector256.Load(c + 192), Vector256.Load(c + 224));
            var scale = Vector256.Load((short*)(p + 2048 + 32 * j));
            i0 += Avx2.MultiplyAddAdjacent(RowOctets.CodeSums(c0, c1, c2, c3, c4, c5, c6, c7, (int*)(x0 + 32 * j)), scale);
            i1 += Avx2.MultiplyAddAdjacent(RowOctets.CodeSums(c0, c1, c2, c3, c4, c5, c6, c7, (int*)(x1 + 32 * j)), scale);
            i2 += Avx2.MultiplyAddAdjacent(RowOctets.CodeSums(c0, c1, c2, c3, c4, c5, c6, c7, (int*)(x2 + 32 * j)), scale);
            i3 += Avx2.MultiplyAddAdjacent(RowOctets.CodeSums(c0, c1, c2, c3, c4, c5, c6, c7, (int*)(x3 + 32 * j)), scale);
        }
        acc[0] += Q4_KFinish(p, i0, bsums[0] + 16 * b, dx[0][b]);
        acc[1] += Q4_KFinish(p, i1, bsums[1] + 16 * b, dx[1][b]);
        acc[2] += Q4_KFinish(p, i2, bsums[2] + 16 * b, dx[2][b]);
        acc[3] += Q4_KFinish(p, i3, bsums[3] + 16 * b, dx[3][b]);
    }

    /// <summary>The term of one super-block given its exact Σ sc q x per row (isum): the mins' part and the float step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q4_KFinish(byte* p, Vector256<int> isum, short* bsums, float dx)
    {
        // Σ_j m_j (bsums[2j] + bsums[2j + 1]): the mins meet each pair of group sums in one vpmaddwd.
        int* pairs = (int*)bsums;
        byte* m = p + 2048 + 256;
        var msum = Avx2.MultiplyAddAdjacent(Vector256.Load((short*)m), Vector256.Create(pairs[0]).AsInt16());
        for (int j = 1; j < 8; j++)
            msum += Avx2.MultiplyAddAdjacent(Vector256.Load((short*)(m + 32 * j)), Vector256.Create(pairs[j]).AsInt16());
        var vdx = Vector256.Create(dx);
        var d = Vector256.Load((float*)(p + 2560));
        var dmin = Vector256.Load((float*)(p + 2592));
        return d * vdx * Vector256.ConvertToSingle(isum) - dmin * vdx * Vector256.ConvertToSingle(msum);
    }

    /// <summary>Lane j: d_j * dx * isum_j of one super-block for row j, isum = Σ_g sc[g] Σ q x - 32 Σ_g sc[g] bsums[g].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q6_KTerm(byte* p, sbyte* x, short* bsums, float dx)
    {
        var dots = Vector256<int>.Zero;
        for (int v = 0; v < 8; v++)
        {
            byte* c = p + 256 * v;
            dots += Q6_KDots(Vector256.Load(c), Vector256.Load(c + 32), Vector256.Load(c + 64), Vector256.Load(c + 96),
                Vector256.Load(c + 128), Vector256.Load(c + 160), Vector256.Load(c + 192), Vector256.Load(c + 224),
                Vector256.Load((short*)(p + 2048 + 64 * v)), Vector256.Load((short*)(p + 2048 + 64 * v + 32)), (int*)(x + 32 * v));
        }
        return Q6_KFinish(p, dots, bsums, dx);
    }

    /// <summary>Lane j: Σ sc q x of 32 values (codes c0..c7, group scales s0 and s1) for row j. Codes reach 63: two
    /// partial sums add up in 16 bits (at most 2 * 2 * 63 * 127 = 32004), so each group of 16 values takes two vpmaddwd
    /// with its scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q6_KDots(Vector256<byte> c0, Vector256<byte> c1, Vector256<byte> c2, Vector256<byte> c3,
        Vector256<byte> c4, Vector256<byte> c5, Vector256<byte> c6, Vector256<byte> c7, Vector256<short> s0, Vector256<short> s1, int* xv)
    {
        var a = Avx2.MultiplyAddAdjacent(c0, Vector256.Create(xv[0]).AsSByte()) + Avx2.MultiplyAddAdjacent(c1, Vector256.Create(xv[1]).AsSByte());
        var b = Avx2.MultiplyAddAdjacent(c2, Vector256.Create(xv[2]).AsSByte()) + Avx2.MultiplyAddAdjacent(c3, Vector256.Create(xv[3]).AsSByte());
        var e = Avx2.MultiplyAddAdjacent(c4, Vector256.Create(xv[4]).AsSByte()) + Avx2.MultiplyAddAdjacent(c5, Vector256.Create(xv[5]).AsSByte());
        var f = Avx2.MultiplyAddAdjacent(c6, Vector256.Create(xv[6]).AsSByte()) + Avx2.MultiplyAddAdjacent(c7, Vector256.Create(xv[7]).AsSByte());
        return Avx2.MultiplyAddAdjacent(a, s0) + Avx2.MultiplyAddAdjacent(b, s0)
            + Avx2.MultiplyAddAdjacent(e, s1) + Avx2.MultiplyAddAdjacent(f, s1);
    }

    /// <summary><see cref="Q6_KTerm"/> of super-block b for vectors 0..3, added to acc[0..3]: each 32 values' eight code
    /// registers and two scale registers are loaded once for the four.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q6_KQuad(byte* p, sbyte** qs, short** bsums, float** dx, int b, Vector256<float>* acc)
    {
        sbyte* x0 = qs[0] + 256 * b, x1 = qs[1] + 256 * b, x2 = qs[2] + 256 * b, x3 = qs[3] + 256 * b;
        Vector256<int> d0 = default, d1 = default, d2 = default, d3 = default;
        for (int v = 0; v < 8; v++)
        {
            byte* c = p + 256 * v;
            var (c0, c1, c2, c3) = (Vector256.Load(c), Vector256.Load(c + 32), Vector256.Load(c + 64), Vector256.Load(c + 96));
            var (c4, c5, c6, c7) = (Vector256.Load(c + 128), Vector256.Load(c + 160), Vector256.Load(c + 192), Vector256.Load(c + 224));
            var s0 = Vector256.Load((short*)(p + 2048 + 64 * v));
            var s1 = Vector256.Load((short*)(p + 2048 + 64 * v + 32));
            d0 += Q6_KDots(c0, c1, c2, c3, c4, c5, c6, c7, s0, s1, (int*)(x0 + 32 * v));
            d1 += Q6_KDots(c0, c1, c2, c3, c4, c5, c6, c7, s0, s1, (int*)(x1 + 32 * v));
            d2 += Q6_KDots(c0, c1, c2, c3, c4, c5, c6, c7, s0, s1, (int*)(x2 + 32 * v));
            d3 += Q6_KDots(c0, c1, c2, c3, c4, c5, c6, c7, s0, s1, (int*)(x3 + 32 * v));
        }
        acc[0] += Q6_KFinish(p, d0, bsums[0] + 16 * b, dx[0][b]);
        acc[1] += Q6_KFinish(p, d1, bsums[1] + 16 * b, dx[1][b]);
        acc[2] += Q6_KFinish(p, d2, bsums[2] + 16 * b, dx[2][b]);
        acc[3] += Q6_KFinish(p, d3, bsums[3] + 16 * b, dx[3][b]);
    }

    /// <summary>The term of one super-block given its Σ sc q x per row (dots): minus 32 Σ sc bsums, then the float step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q6_KFinish(byte* p, Vector256<int> dots, short* bsums, float dx)
    {
        int* pairs = (int*)bsums;
        byte* sp = p + 2048 + 512;
        var offset = Avx2.MultiplyAddAdjacent(Vector256.Load((short*)sp), Vector256.Create(pairs[0]).AsInt16());
        for (int i = 1; i < 8; i++)
            offset += Avx2.MultiplyAddAdjacent(Vector256.Load((short*)(sp + 32 * i)), Vector256.Create(pairs[i]).AsInt16());
        var isum = dots - Vector256.ShiftLeft(offset, 5);
        return Vector256.Load((float*)(p + 2816)) * Vector256.Create(dx) * Vector256.ConvertToSingle(isum);
    }

    /// <summary>Super-block b of eight Q4_K rows (at w, w + rowBytes, ...) into the layout <see cref="Q4_KTerm"/> reads.</summary>
    private static void InterleaveQ4_K(byte* w, int rowBytes, byte* dst)
    {
        var mask = Vector256.Create((byte)0x0F);
        for (int c = 0; c < 4; c++)
        {
            // 32 code bytes: low nibbles are sub-block 2c, high nibbles sub-block 2c + 1.
            byte* q = w + 16 + 32 * c;
            var y0 = Vector256.Load(q); var y1 = Vector256.Load(q + rowBytes);
            var y2 = Vector256.Load(q + 2L * rowBytes); var y3 = Vector256.Load(q + 3L * rowBytes);
            var y4 = Vector256.Load(q + 4L * rowBytes); var y5 = Vector256.Load(q + 5L * rowBytes);
            var y6 = Vector256.Load(q + 6L * rowBytes); var y7 = Vector256.Load(q + 7L * rowBytes);
            Transpose(y0 & mask, y1 & mask, y2 & mask, y3 & mask, y4 & mask, y5 & mask, y6 & mask, y7 & mask, dst + 256 * (2 * c));
            Transpose(High(y0, mask), High(y1, mask), High(y2, mask), High(y3, mask),
                High(y4, mask), High(y5, mask), High(y6, mask), High(y7, mask), dst + 256 * (2 * c + 1));
        }
        // Each row's eight scales and eight mins widened to shorts, transposed by 32-bit words: register i (0..3) gets
        // lane r = (sc_r[2i], sc_r[2i + 1]), register 4 + i the mins likewise; then each short is spread over its lane.
        var sm = stackalloc uint[32]; // eight rows of 16 bytes: scales 0..7, mins 0..7
        float* d = (float*)(dst + 2560), dmin = (float*)(dst + 2592);
        for (int r = 0; r < 8; r++)
        {
            byte* row = w + (long)r * rowBytes;
            RowDots.UnpackScales(row + 4, sm + 4 * r);
            d[r] = HalfWidening.ToSingle(row);
            dmin[r] = HalfWidening.ToSingle(row + 2);
        }
        var pairs = stackalloc Vector256<byte>[8];
        byte* bytes = (byte*)sm;
        Transpose(Widen(bytes), Widen(bytes + 16), Widen(bytes + 32), Widen(bytes + 48),
            Widen(bytes + 64), Widen(bytes + 80), Widen(bytes + 96), Widen(bytes + 112), (byte*)pairs);
        for (int i = 0; i < 4; i++)
        {
            Avx2.Shuffle(pairs[i], DupLow).Store(dst + 2048 + 64 * i);
            Avx2.Shuffle(pairs[i], DupHigh).Store(dst + 2048 + 64 * i + 32);
            Avx2.Shuffle(pairs[4 + i], DupLow).Store(dst + 2304 + 64 * i);
            Avx2.Shuffle(pairs[4 + i], DupHigh).Store(dst + 2304 + 64 * i + 32);
        }
    }

    /// <summary>Super-block b of eight Q6_K rows into the layout <see cref="Q6_KTerm"/> reads.</summary>
    private static void InterleaveQ6_K(byte* w, int rowBytes, byte* dst)
    {
        var m4 = Vector256.Create((byte)0x0F);
        var codes = stackalloc Vector256<byte>[64]; // [row * 8 + v]: the 32 codes of values 32v..32v+31
        for (int r = 0; r < 8; r++)
        {
            byte* row = w + (long)r * rowBytes;
            var c = codes + 8 * r;
            c[0] = KQuantTiles.Codes(row, row + 128, 0, m4, out c[1], out c[2], out c[3]);
            c[4] = KQuantTiles.Codes(row, row + 128, 1, m4, out c[5], out c[6], out c[7]);
        }
        for (int v = 0; v < 8; v++)
            Transpose(codes[v], codes[8 + v], codes[16 + v], codes[24 + v], codes[32 + v], codes[40 + v], codes[48 + v], codes[56 + v], dst + 256 * v);
        // Each row's 16 scales widened to shorts, transposed by 32-bit words: register i gets lane r =
        // (sc_r[2i], sc_r[2i + 1]) (the pairs for Σ sc bsums), then each short spread over its lane (group scales).
        Transpose(Widen(w + 192, rowBytes, 0), Widen(w + 192, rowBytes, 1), Widen(w + 192, rowBytes, 2), Widen(w + 192, rowBytes, 3),
            Widen(w + 192, rowBytes, 4), Widen(w + 192, rowBytes, 5), Widen(w + 192, rowBytes, 6), Widen(w + 192, rowBytes, 7), dst + 2560);
        for (int i = 0; i < 8; i++)
        {
            var pair = Vector256.Load(dst + 2560 + 32 * i);
            Avx2.Shuffle(pair, DupLow).Store(dst + 2048 + 64 * i);
            Avx2.Shuffle(pair, DupHigh).Store(dst + 2048 + 64 * i + 32);
        }
        float* d = (float*)(dst + 2816);
        for (int r = 0; r < 8; r++)
            d[r] = HalfWidening.ToSingle(w + (long)r * rowBytes + 208);
    }

    /// <summary>Byte shuffles spreading the low (high) short of every 32-bit lane over the lane.</summary>
    private static Vector256<byte> DupLow => Vector256.Create((byte)0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13);
    private static Vector256<byte> DupHigh => Vector256.Create((byte)2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15, 2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15);

    /// <summary>16 unsigned bytes at p as shorts.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Widen(byte* p) => Avx2.ConvertToVector256Int16(Vector128.Load(p)).AsByte();

    /// <summary>The 16 signed scales of row r (at p + r rowBytes) as shorts.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Widen(byte* p, int rowBytes, int r) =>
        Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(p + (long)r * rowBytes))).AsByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> High(Vector256<byte> y, Vector256<byte> mask) =>
        Vector256.ShiftRightLogical(y.AsUInt16(), 4).AsByte() & mask;

    /// <summary>Eight rows of 32 bytes as eight 4-byte words each: register k at dst + 32 k gets word k of every row,
    /// row j in bytes 4j..4j+3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose(Vector256<byte> y0, Vector256<byte> y1, Vector256<byte> y2, Vector256<byte> y3,
        Vector256<byte> y4, Vector256<byte> y5, Vector256<byte> y6, Vector256<byte> y7, byte* dst)
    {
        var t0 = Avx2.UnpackLow(y0.AsInt32(), y1.AsInt32()).AsInt64();
        var t1 = Avx2.UnpackHigh(y0.AsInt32(), y1.AsInt32()).AsInt64();
        var t2 = Avx2.UnpackLow(y2.AsInt32(), y3.AsInt32()).AsInt64();
        var t3 = Avx2.UnpackHigh(y2.AsInt32(), y3.AsInt32()).AsInt64();
        var t4 = Avx2.UnpackLow(y4.AsInt32(), y5.AsInt32()).AsInt64();
        var t5 = Avx2.UnpackHigh(y4.AsInt32(), y5.AsInt32()).AsInt64();
        var t6 = Avx2.UnpackLow(y6.AsInt32(), y7.AsInt32()).AsInt64();
        var t7 = Avx2.UnpackHigh(y6.AsInt32(), y7.AsInt32()).AsInt64();
        // u_k: word k (low 128 bits) and word k + 4 (high) of rows 0..3, v_k the same for rows 4..7.
        var u0 = Avx2.UnpackLow(t0, t2); var u1 = Avx2.UnpackHigh(t0, t2);
        var u2 = Avx2.UnpackLow(t1, t3); var u3 = Avx2.UnpackHigh(t1, t3);
        var v0 = Avx2.UnpackLow(t4, t6); var v1 = Avx2.UnpackHigh(t4, t6);
        var v2 = Avx2.UnpackLow(t5, t7); var v3 = Avx2.UnpackHigh(t5, t7);
        Avx2.Permute2x128(u0, v0, 0x20).Store((long*)dst);
        Avx2.Permute2x128(u1, v1, 0x20).Store((long*)(dst + 32));
        Avx2.Permute2x128(u2, v2, 0x20).Store((long*)(dst + 64));
        Avx2.Permute2x128(u3, v3, 0x20).Store((long*)(dst + 96));
        Avx2.Permute2x128(u0, v0, 0x31).Store((long*)(dst + 128));
        Avx2.Permute2x128(u1, v1, 0x31).Store((long*)(dst + 160));
        Avx2.Permute2x128(u2, v2, 0x31).Store((long*)(dst + 192));
        Avx2.Permute2x128(u3, v3, 0x31).Store((long*)(dst + 224));
    }
}
