using System.Runtime.CompilerServices;
namespace ClockLM.Tensors;

/// <summary>
/// Integer dot products between one block of quantized weights and the matching 8-bit activations. Each
/// implementation (scalar reference, portable Vector128, AVX2) returns the same exact integer; the float scaling
/// around them lives once in <see cref="RowDots"/>, so every path gives bit-identical row results.
/// Weight values are the unsigned codes stored in the block (offsets such as -8 are applied by the caller
/// through the activation block sums).
/// </summary>
internal unsafe interface IBlockDots
{
    /// <summary>Σ w[i] x[i] over 32 signed bytes (Q8_0).</summary>
    static abstract int S8(sbyte* w, sbyte* x);

    /// <summary>Σ q[i] x[i] over 32 values whose 4-bit codes are the low nibbles (values 0..15) and high nibbles (16..31) of 16 bytes.</summary>
    static abstract int U4(byte* qs, sbyte* x);

    /// <summary>As <see cref="U4"/> with bit i of <paramref name="qh"/> as the fifth bit of value i.</summary>
    static abstract int U5(byte* qs, uint qh, sbyte* x);

    /// <summary>Q4_K super-block: Σ_j sc[j] Σ_i q x over 8 sub-blocks of 32 (chunk c of 32 bytes: low nibbles are sub-block 2c, high 2c+1).</summary>
    static abstract int Q4K(byte* qs, sbyte* x, byte* sc);

    /// <summary>Q5_K super-block: as <see cref="Q4K"/> with fifth bits in qh (bit 2c for the low nibbles of chunk c, 2c+1 for the high).</summary>
    static abstract int Q5K(byte* qh, byte* qs, sbyte* x, byte* sc);

    /// <summary>Q6_K super-block: Σ_g sc[g] Σ_i q x over 16 groups of 16, q the unsigned 6-bit code (0..63).</summary>
    static abstract int Q6K(byte* ql, byte* qh, sbyte* sc, sbyte* x);

    /// <summary>Σ_j m[j] (bsums[2j] + bsums[2j+1]) over the 8 sub-blocks: the Q4_K/Q5_K mins times the activation sums.</summary>
    static abstract int MinSum(byte* m, short* bsums);
}

/// <summary>The scalar reference for <see cref="IBlockDots"/>: the definitions, written out.</summary>
internal readonly unsafe struct ScalarDots : IBlockDots
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int MinSum(byte* m, short* bsums)
    {
        int s = 0;
        for (int j = 0; j < 8; j++) s += m[j] * (bsums[2 * j] + bsums[2 * j + 1]);
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int S8(sbyte* w, sbyte* x)
    {
        int s = 0;
        for (int i = 0; i < 32; i++) s += w[i] * x[i];
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int U4(byte* qs, sbyte* x)
    {
        int s = 0;
        for (int i = 0; i < 16; i++) s += (qs[i] & 0xF) * x[i] + (qs[i] >> 4) * x[i + 16];
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int U5(byte* qs, uint qh, sbyte* x)
    {
        int s = 0;
        for (int i = 0; i < 16; i++)
        {
            int lo = (qs[i] & 0xF) | (int)(((qh >> i) & 1) << 4);
            int hi = (qs[i] >> 4) | (int)(((qh >> (i + 16)) & 1) << 4);
            s += lo * x[i] + hi * x[i + 16];
        }
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Q4K(byte* qs, sbyte* x, byte* sc)
    {
        int total = 0;
        for (int c = 0; c < 4; c++)
        {
            int lo = 0, hi = 0;
            for (int l = 0; l < 32; l++)
            {
                lo += (qs[32 * c + l] & 0xF) * x[64 * c + l];
                hi += (qs[32 * c + l] >> 4) * x[64 * c + 32 + l];
            }
            total += sc[2 * c] * lo + sc[2 * c + 1] * hi;
        }
        return total;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Q5K(byte* qh, byte* qs, sbyte* x, byte* sc)
    {
        int total = 0;
        for (int c = 0; c < 4; c++)
        {
            int lo = 0, hi = 0;
            for (int l = 0; l < 32; l++)
            {
                int ql = (qs[32 * c + l] & 0xF) | (((qh[l] >> (2 * c)) & 1) << 4);
                int qhi = (qs[32 * c + l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4);
                lo += ql * x[64 * c + l];
                hi += qhi * x[64 * c + 32 + l];
            }
            total += sc[2 * c] * lo + sc[2 * c + 1] * hi;
        }
        return total;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Q6K(byte* ql, byte* qh, sbyte* sc, sbyte* x)
    {
        int total = 0;
        Span<int> group = stackalloc int[8];
        for (int h = 0; h < 2; h++)
        {
            byte* l0 = ql + 64 * h, h0 = qh + 32 * h;
            sbyte* xh = x + 128 * h;
            group.Clear();
            for (int l = 0; l < 32; l++)
            {
                int g = l / 16;
                group[g + 0] += ((l0[l] & 0xF) | ((h0[l] & 3) << 4)) * xh[l];
                group[g + 2] += ((l0[l + 32] & 0xF) | (((h0[l] >> 2) & 3) << 4)) * xh[l + 32];
                group[g + 4] += ((l0[l] >> 4) | (((h0[l] >> 4) & 3) << 4)) * xh[l + 64];
                group[g + 6] += ((l0[l + 32] >> 4) | (((h0[l] >> 6) & 3) << 4)) * xh[l + 96];
            }
            for (int g = 0; g < 8; g++) total += sc[8 * h + g] * group[g];
        }
        return total;
    }
}
