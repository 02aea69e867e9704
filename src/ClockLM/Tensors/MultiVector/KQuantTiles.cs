using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Q4_K and Q6_K rows times a group of vectors on AVX2. Per super-block, the work that depends on the weights alone (the
/// 6-bit scales and mins, the 4-bit codes of the eight sub-blocks, the broadcast scales, d and dmin) is done once and
/// shared by the vectors; per vector the integer dot and min sum are exact, and the float step is that of
/// <see cref="RowDots.Q4_K{T}"/>: acc += d * dx * isum - dmin * dx * msum, one accumulator, super-blocks in order
/// (Q6_K: <see cref="RowDots.Q6_K{T}"/>, acc += d * dx * isum with isum = Σ sc q x - 32 Σ sc bsums).
/// </summary>
internal static unsafe class KQuantTiles
{
    public static void Q4_KRows(in MatMulJob job, int start, int end) => Rows(job, start, end, q6: false);

    public static void Q6_KRows(in MatMulJob job, int start, int end) => Rows(job, start, end, q6: true);

    /// <summary>Each vector's 8-bit values, super-block scales and group sums, read once per product.</summary>
    internal static void Pointers(ActivationBlocks[] acts, int count, sbyte** qs, float** dx, short** bsums)
    {
        for (int t = 0; t < count; t++)
        {
            qs[t] = acts[t].Qs;
            dx[t] = acts[t].D;
            bsums[t] = acts[t].BSums;
        }
    }

    private static void Rows(in MatMulJob job, int start, int end, bool q6)
    {
        int count = job.Count, blocks = job.Cols / 256;
        var qs = stackalloc sbyte*[count];
        var dx = stackalloc float*[count];
        var bsums = stackalloc short*[count];
        Pointers(job.Activations!, count, qs, dx, bsums);
        var acc = stackalloc float[MatMulJob.QuantizedGroup];
        for (int r0 = start; r0 < end; r0 += MatMulJob.RowBlock)
        {
            int r1 = Math.Min(r0 + MatMulJob.RowBlock, end);
            for (int t0 = 0; t0 < count; t0 += MatMulJob.QuantizedGroup)
            {
                int group = Math.Min(MatMulJob.QuantizedGroup, count - t0);
                for (int r = r0; r < r1; r++)
                {
                    if (q6) Q6_KRow(job.Weights + (long)r * job.RowBytes, blocks, qs + t0, dx + t0, bsums + t0, group, acc);
                    else Q4_KRow(job.Weights + (long)r * job.RowBytes, blocks, qs + t0, dx + t0, bsums + t0, group, acc);
                    for (int t = 0; t < group; t++) job.Y[(long)(t0 + t) * job.Rows + r] = acc[t];
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q4_KRow(byte* w, int blocks, sbyte** qs, float** dx, short** bsums, int group, float* acc)
    {
        uint* sm = stackalloc uint[4];
        byte* sc = (byte*)sm, m = sc + 8;
        var mask = Vector256.Create((byte)0x0F);
        for (int t = 0; t < group; t++) acc[t] = 0;
        for (int b = 0; b < blocks; b++, w += 144)
        {
            RowDots.UnpackScales(w + 4, sm);
            float d = HalfWidening.ToSingle(w);
            float dmin = HalfWidening.ToSingle(w + 2);
            byte* q = w + 16;
            var q0 = Vector256.Load(q); var q1 = Vector256.Load(q + 32); var q2 = Vector256.Load(q + 64); var q3 = Vector256.Load(q + 96);
            var l0 = q0 & mask; var h0 = Vector256.ShiftRightLogical(q0.AsUInt16(), 4).AsByte() & mask;
            var l1 = q1 & mask; var h1 = Vector256.ShiftRightLogical(q1.AsUInt16(), 4).AsByte() & mask;
            var l2 = q2 & mask; var h2 = Vector256.ShiftRightLogical(q2.AsUInt16(), 4).AsByte() & mask;
            var l3 = q3 & mask; var h3 = Vector256.ShiftRightLogical(q3.AsUInt16(), 4).AsByte() & mask;
            var s0 = Vector256.Create((short)sc[0]); var s1 = Vector256.Create((short)sc[1]);
            var s2 = Vector256.Create((short)sc[2]); var s3 = Vector256.Create((short)sc[3]);
            var s4 = Vector256.Create((short)sc[4]); var s5 = Vector256.Create((short)sc[5]);
            var s6 = Vector256.Create((short)sc[6]); var s7 = Vector256.Create((short)sc[7]);
            for (int t = 0; t < group; t++)
            {
                sbyte* x = qs[t] + 256 * b;
                var sum = MulAdd(l0, x, s0) + MulAdd(h0, x + 32, s1) + MulAdd(l1, x + 64, s2) + MulAdd(h1, x + 96, s3)
                    + MulAdd(l2, x + 128, s4) + MulAdd(h2, x + 160, s5) + MulAdd(l3, x + 192, s6) + MulAdd(h3, x + 224, s7);
                int isum = Vector256.Sum(sum);
                int msum = Avx2Dots.MinSum(m, bsums[t] + 16 * b);
                float dxb = dx[t][b];
                acc[t] += d * dxb * isum - dmin * dxb * msum;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q6_KRow(byte* w, int blocks, sbyte** qs, float** dx, short** bsums, int group, float* acc)
    {
        var m4 = Vector256.Create((byte)0x0F);
        for (int t = 0; t < group; t++) acc[t] = 0;
        for (int b = 0; b < blocks; b++, w += 210)
        {
            sbyte* sc = (sbyte*)(w + 192);
            float d = HalfWidening.ToSingle(w + 208);
            var scales16 = Avx2.ConvertToVector256Int16(sc); // the 16 group scales, for Σ sc bsums
            // The 6-bit codes of both halves (as Avx2Dots.Q6K builds them) and the scales of their groups.
            var c0 = Codes(w, w + 128, 0, m4, out var c1, out var c2, out var c3);
            var c4 = Codes(w, w + 128, 1, m4, out var c5, out var c6, out var c7);
            var s0 = Scales(sc[0], sc[1]); var s1 = Scales(sc[2], sc[3]); var s2 = Scales(sc[4], sc[5]); var s3 = Scales(sc[6], sc[7]);
            var s4 = Scales(sc[8], sc[9]); var s5 = Scales(sc[10], sc[11]); var s6 = Scales(sc[12], sc[13]); var s7 = Scales(sc[14], sc[15]);
            for (int t = 0; t < group; t++)
            {
                sbyte* x = qs[t] + 256 * b;
                var sum = MulAdd(c0, x, s0) + MulAdd(c1, x + 32, s1) + MulAdd(c2, x + 64, s2) + MulAdd(c3, x + 96, s3)
                    + MulAdd(c4, x + 128, s4) + MulAdd(c5, x + 160, s5) + MulAdd(c6, x + 192, s6) + MulAdd(c7, x + 224, s7);
                int offset = Vector256.Sum(Avx2.MultiplyAddAdjacent(scales16, Vector256.Load(bsums[t] + 16 * b)));
                int isum = Vector256.Sum(sum) - 32 * offset;
                acc[t] += d * dx[t][b] * isum;
            }
        }
    }

    /// <summary>The four 32-value code vectors of half h of a Q6_K super-block: low nibbles from ql, top two bits from qh.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> Codes(byte* ql, byte* qh, int h, Vector256<byte> m4,
        out Vector256<byte> q2, out Vector256<byte> q3, out Vector256<byte> q4)
    {
        var l0 = Vector256.Load(ql + 64 * h);
        var l1 = Vector256.Load(ql + 64 * h + 32);
        var hb = Vector256.Load(qh + 32 * h).AsUInt16();
        q2 = (l1 & m4) | Vector256.ShiftLeft(hb & Vector256.Create((ushort)0x0C0C), 2).AsByte();
        q3 = (Vector256.ShiftRightLogical(l0.AsUInt16(), 4).AsByte() & m4) | (hb & Vector256.Create((ushort)0x3030)).AsByte();
        q4 = (Vector256.ShiftRightLogical(l1.AsUInt16(), 4).AsByte() & m4) | Vector256.ShiftRightLogical(hb & Vector256.Create((ushort)0xC0C0), 2).AsByte();
        return (l0 & m4) | Vector256.ShiftLeft(hb & Vector256.Create((ushort)0x0303), 4).AsByte();
    }

    /// <summary>vpmaddubsw's 16 sums: the first 8 cover values 0..15 (one group of 16), the last 8 the next group.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Scales(sbyte first, sbyte second) =>
        Vector256.Create(Vector128.Create((short)first), Vector128.Create((short)second));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> MulAdd(Vector256<byte> codes, sbyte* x, Vector256<short> scale) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(codes, Vector256.Load(x)), scale);
}
