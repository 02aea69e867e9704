using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace ClockLM.Tensors;

/// <summary>Scalar reference conversions from each block layout to floats (ggml's <c>dequantize_row_*</c>).</summary>
public static class Dequantize
{
    /// <summary>True when <see cref="Row"/> can read <paramref name="type"/>.</summary>
    public static bool IsSupported(GgmlType type) => Quantize.IsSupported(type);

    /// <summary>Converts one row of <paramref name="type"/> blocks to floats; <paramref name="dst"/>'s length is the value count.</summary>
    public static void Row(GgmlType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (!IsSupported(type))
            throw new NotSupportedException($"dequantizing {type} is not supported");
        int block = GgmlTypeInfo.BlockSize(type);
        if (dst.Length % block != 0)
            throw new ArgumentException($"{type} rows hold a multiple of {block} values, got {dst.Length}", nameof(dst));
        long need = GgmlTypeInfo.RowBytes(type, dst.Length);
        if (src.Length < need)
            throw new ArgumentException($"{dst.Length} values of {type} take {need} bytes, source has {src.Length}", nameof(src));

        int blockBytes = GgmlTypeInfo.BlockBytes(type);
        switch (type)
        {
            case GgmlType.F32:
                MemoryMarshal.Cast<byte, float>(src)[..dst.Length].CopyTo(dst);
                return;
            case GgmlType.F16:
                for (int i = 0; i < dst.Length; i++) dst[i] = Half(src[(2 * i)..]);
                return;
            case GgmlType.BF16:
                for (int i = 0; i < dst.Length; i++)
                    dst[i] = BFloat16ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]));
                return;
        }
        for (int b = 0; b < dst.Length / block; b++)
        {
            var x = src.Slice(b * blockBytes, blockBytes);
            var y = dst.Slice(b * block, block);
            switch (type)
            {
                case GgmlType.Q8_0: Q8_0(x, y); break;
                case GgmlType.Q4_0: Q4_0(x, y); break;
                case GgmlType.Q4_1: Q4_1(x, y); break;
                case GgmlType.Q5_0: Q5_0(x, y); break;
                case GgmlType.Q5_1: Q5_1(x, y); break;
                case GgmlType.Q4_K: Q4_K(x, y); break;
                case GgmlType.Q5_K: Q5_K(x, y); break;
                case GgmlType.Q6_K: Q6_K(x, y); break;
            }
        }
    }

    /// <summary>The f16 stored in the first two bytes, as a float.</summary>
    public static float Half(ReadOnlySpan<byte> bytes) =>
        HalfWidening.ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes));

    /// <summary>bfloat16 bits to float: the top 16 bits of an IEEE single.</summary>
    public static float BFloat16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    // block: f16 d, int8 q[32];  x = d * q
    private static void Q8_0(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x);
        for (int j = 0; j < 32; j++) y[j] = d * (sbyte)x[2 + j];
    }

    // block: f16 d, qs[16]; low nibbles are values 0..15, high nibbles 16..31; x = d * (q - 8)
    private static void Q4_0(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x);
        for (int j = 0; j < 16; j++)
        {
            y[j] = d * ((x[2 + j] & 0x0F) - 8);
            y[j + 16] = d * ((x[2 + j] >> 4) - 8);
        }
    }

    // block: f16 d, f16 m, qs[16]; x = d * q + m
    private static void Q4_1(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x), m = Half(x[2..]);
        for (int j = 0; j < 16; j++)
        {
            y[j] = d * (x[4 + j] & 0x0F) + m;
            y[j + 16] = d * (x[4 + j] >> 4) + m;
        }
    }

    // block: f16 d, u32 qh, qs[16]; bit j of qh is the fifth bit of value j; x = d * (q - 16)
    private static void Q5_0(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x);
        uint qh = BinaryPrimitives.ReadUInt32LittleEndian(x[2..]);
        for (int j = 0; j < 16; j++)
        {
            int lo = (x[6 + j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
            int hi = (x[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = d * (lo - 16);
            y[j + 16] = d * (hi - 16);
        }
    }

    // block: f16 d, f16 m, u32 qh, qs[16]; x = d * q + m
    private static void Q5_1(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x), m = Half(x[2..]);
        uint qh = BinaryPrimitives.ReadUInt32LittleEndian(x[4..]);
        for (int j = 0; j < 16; j++)
        {
            int lo = (x[8 + j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
            int hi = (x[8 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = d * lo + m;
            y[j + 16] = d * hi + m;
        }
    }

    // block: f16 d, f16 dmin, scales[12], qs[128]; sub-block j of 32: x = d * sc[j] * q - dmin * m[j]
    private static void Q4_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x), dmin = Half(x[2..]);
        var packed = x.Slice(4, 12);
        var qs = x.Slice(16, 128);
        for (int c = 0; c < 4; c++)
        {
            var (sc1, m1) = KQuants.ScaleMin(packed, 2 * c);
            var (sc2, m2) = KQuants.ScaleMin(packed, 2 * c + 1);
            float d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2;
            for (int l = 0; l < 32; l++)
            {
                y[64 * c + l] = d1 * (qs[32 * c + l] & 0xF) - min1;
                y[64 * c + 32 + l] = d2 * (qs[32 * c + l] >> 4) - min2;
            }
        }
    }

    // block: f16 d, f16 dmin, scales[12], qh[32], qs[128]; as Q4_K with a fifth bit from qh
    private static void Q5_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x), dmin = Half(x[2..]);
        var packed = x.Slice(4, 12);
        var qh = x.Slice(16, 32);
        var qs = x.Slice(48, 128);
        for (int c = 0; c < 4; c++)
        {
            var (sc1, m1) = KQuants.ScaleMin(packed, 2 * c);
            var (sc2, m2) = KQuants.ScaleMin(packed, 2 * c + 1);
            float d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2;
            for (int l = 0; l < 32; l++)
            {
                int lo = (qs[32 * c + l] & 0xF) | (((qh[l] >> (2 * c)) & 1) << 4);
                int hi = (qs[32 * c + l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4);
                y[64 * c + l] = d1 * lo - min1;
                y[64 * c + 32 + l] = d2 * hi - min2;
            }
        }
    }

    // block: ql[128], qh[64], int8 scales[16], f16 d; group g of 16: x = d * scales[g] * (q - 32)
    private static void Q6_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x[208..]);
        for (int h = 0; h < 2; h++)
        {
            var ql = x.Slice(64 * h, 64);
            var qh = x.Slice(128 + 32 * h, 32);
            var sc = x.Slice(192 + 8 * h, 8);
            for (int l = 0; l < 32; l++)
            {
                int g = l / 16;
                int q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[128 * h + l] = d * (sbyte)sc[g] * q1;
                y[128 * h + l + 32] = d * (sbyte)sc[g + 2] * q2;
                y[128 * h + l + 64] = d * (sbyte)sc[g + 4] * q3;
                y[128 * h + l + 96] = d * (sbyte)sc[g + 6] * q4;
            }
        }
    }
}
