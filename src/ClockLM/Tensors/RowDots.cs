using System.Runtime.CompilerServices;

namespace ClockLM.Tensors;

/// <summary>
/// One weight row times the quantized activations, per weight type. The float arithmetic around the integer block
/// dots is written once here and shared by every <see cref="IBlockDots"/> implementation, so all paths agree bit for bit:
/// <list type="bullet">
/// <item>32-value blocks: the term of block b is dw * dx * isum (plus m * dx * Σqx for the formats with a min),
/// added to accumulator b mod 4; the row result is (acc0 + acc1) + (acc2 + acc3).</item>
/// <item>256-value super-blocks: one accumulator, acc += d * dx * isum - dmin * dx * msum.</item>
/// </list>
/// </summary>
internal static unsafe class RowDots
{
    /// <summary>Every f16 bit pattern as a float (256 KB, like ggml's table): block scales widen with one load.</summary>
    private static readonly float[] HalfTableArray = BuildHalfTable();
    private static readonly float* HalfTable = (float*)Unsafe.AsPointer(ref HalfTableArray[0]);

    private static float[] BuildHalfTable()
    {
        var table = GC.AllocateUninitializedArray<float>(65536, pinned: true);
        for (int h = 0; h < 65536; h++) table[h] = (float)BitConverter.UInt16BitsToHalf((ushort)h);
        return table;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float F16(byte* p) => HalfTable[*(ushort*)p];

    /// <summary>Runs rows [start, end) of the product with block dots <typeparamref name="T"/>.</summary>
    public static void Rows<T>(in MatVecJob job, int start, int end) where T : struct, IBlockDots
    {
        var a = job.Activations!;
        int n = job.Cols;
        for (int r = start; r < end; r++)
        {
            byte* w = job.Weights + (long)r * job.RowBytes;
            job.Y[r] = job.Type switch
            {
                GgmlType.Q8_0 => Q8_0<T>(w, a, n / 32),
                GgmlType.Q4_0 => Q4_0<T>(w, a, n / 32),
                GgmlType.Q4_1 => Q4_1<T>(w, a, n / 32),
                GgmlType.Q5_0 => Q5_0<T>(w, a, n / 32),
                GgmlType.Q5_1 => Q5_1<T>(w, a, n / 32),
                GgmlType.Q4_K => Q4_K<T>(w, a, n / 256),
                GgmlType.Q5_K => Q5_K<T>(w, a, n / 256),
                GgmlType.Q6_K => Q6_K<T>(w, a, n / 256),
                _ => FloatDots.Dot(job.Type, job.Path, w, job.X, n),
            };
        }
    }

    public static float Q8_0<T>(byte* w, ActivationBlocks a, int blocks) where T : struct, IBlockDots
    {
        float* acc = stackalloc float[4] { 0, 0, 0, 0 };
        sbyte* x = a.Qs;
        float* dx = a.D;
        for (int b = 0; b < blocks; b++, w += 34)
        {
            float t = F16(w) * dx[b] * T.S8((sbyte*)(w + 2), x + 32 * b);
            acc[b & 3] += t;
        }
        return (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }

    public static float Q4_0<T>(byte* w, ActivationBlocks a, int blocks) where T : struct, IBlockDots
    {
        float* acc = stackalloc float[4] { 0, 0, 0, 0 };
        sbyte* x = a.Qs;
        float* dx = a.D;
        int* sum = a.Sum;
        for (int b = 0; b < blocks; b++, w += 18)
        {
            float t = F16(w) * dx[b] * (T.U4(w + 2, x + 32 * b) - 8 * sum[b]);
            acc[b & 3] += t;
        }
        return (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }

    public static float Q5_0<T>(byte* w, ActivationBlocks a, int blocks) where T : struct, IBlockDots
    {
        float* acc = stackalloc float[4] { 0, 0, 0, 0 };
        sbyte* x = a.Qs;
        float* dx = a.D;
        int* sum = a.Sum;
        for (int b = 0; b < blocks; b++, w += 22)
        {
            float t = F16(w) * dx[b] * (T.U5(w + 6, Unsafe.ReadUnaligned<uint>(w + 2), x + 32 * b) - 16 * sum[b]);
            acc[b & 3] += t;
        }
        return (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }

    public static float Q4_1<T>(byte* w, ActivationBlocks a, int blocks) where T : struct, IBlockDots
    {
        float* acc = stackalloc float[4] { 0, 0, 0, 0 };
        sbyte* x = a.Qs;
        float* dx = a.D, s = a.S;
        for (int b = 0; b < blocks; b++, w += 20)
        {
            float t = F16(w) * dx[b] * T.U4(w + 4, x + 32 * b) + F16(w + 2) * s[b];
            acc[b & 3] += t;
        }
        return (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }

    public static float Q5_1<T>(byte* w, ActivationBlocks a, int blocks) where T : struct, IBlockDots
    {
        float* acc = stackalloc float[4] { 0, 0, 0, 0 };
        sbyte* x = a.Qs;
        float* dx = a.D, s = a.S;
        for (int b = 0; b < blocks; b++, w += 24)
        {
            float t = F16(w) * dx[b] * T.U5(w + 8, Unsafe.ReadUnaligned<uint>(w + 4), x + 32 * b) + F16(w + 2) * s[b];
            acc[b & 3] += t;
        }
        return (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }

    /// <summary>The eight 6-bit scales and mins of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void UnpackScales(byte* p, byte* sc, byte* m)
    {
        for (int j = 0; j < 4; j++)
        {
            sc[j] = (byte)(p[j] & 63);
            m[j] = (byte)(p[j + 4] & 63);
            sc[j + 4] = (byte)((p[j + 8] & 0xF) | ((p[j] >> 6) << 4));
            m[j + 4] = (byte)((p[j + 8] >> 4) | ((p[j + 4] >> 6) << 4));
        }
    }

    /// <summary>Σ_j m[j] * (bsums[2j] + bsums[2j + 1]): the activation sum of each 32-value sub-block times its min.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int MinSum(byte* m, short* bsums)
    {
        int s = 0;
        for (int j = 0; j < 8; j++) s += m[j] * (bsums[2 * j] + bsums[2 * j + 1]);
        return s;
    }

    public static float Q4_K<T>(byte* w, ActivationBlocks a, int blocks) where T : struct, IBlockDots
    {
        byte* sc = stackalloc byte[8];
        byte* m = stackalloc byte[8];
        float acc = 0;
        for (int b = 0; b < blocks; b++, w += 144)
        {
            UnpackScales(w + 4, sc, m);
            int isum = T.Q4K(w + 16, a.Qs + 256 * b, sc);
            int msum = MinSum(m, a.BSums + 16 * b);
            float dx = a.D[b];
            acc += F16(w) * dx * isum - F16(w + 2) * dx * msum;
        }
        return acc;
    }

    public static float Q5_K<T>(byte* w, ActivationBlocks a, int blocks) where T : struct, IBlockDots
    {
        byte* sc = stackalloc byte[8];
        byte* m = stackalloc byte[8];
        float acc = 0;
        for (int b = 0; b < blocks; b++, w += 176)
        {
            UnpackScales(w + 4, sc, m);
            int isum = T.Q5K(w + 16, w + 48, a.Qs + 256 * b, sc);
            int msum = MinSum(m, a.BSums + 16 * b);
            float dx = a.D[b];
            acc += F16(w) * dx * isum - F16(w + 2) * dx * msum;
        }
        return acc;
    }

    public static float Q6_K<T>(byte* w, ActivationBlocks a, int blocks) where T : struct, IBlockDots
    {
        float acc = 0;
        for (int b = 0; b < blocks; b++, w += 210)
        {
            sbyte* sc = (sbyte*)(w + 192);
            short* bsums = a.BSums + 16 * b;
            int offset = 0;
            for (int g = 0; g < 16; g++) offset += sc[g] * bsums[g];
            int isum = T.Q6K(w, w + 128, sc, a.Qs + 256 * b) - 32 * offset;
            acc += F16(w + 208) * a.D[b] * isum;
        }
        return acc;
    }
}
