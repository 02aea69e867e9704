using System.Runtime.CompilerServices;

namespace ClockLM.Tensors;

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
