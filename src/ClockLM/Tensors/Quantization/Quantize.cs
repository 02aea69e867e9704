using System.Buffers.Binary;

namespace ClockLM.Tensors;

/// <summary>
/// Scalar reference conversions from floats to each block layout, producing the same bytes as ggml's
/// <c>quantize_row_*_ref</c> (the deterministic quantizers llama.cpp uses to create model files without an
/// importance matrix). Every block starts from its own floats, so a row can be quantized in any order.
/// </summary>
public static class Quantize
{
    /// <summary>Types <see cref="Row"/> can produce.</summary>
    public static bool IsSupported(GgmlType type) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16
        or GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1
        or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K;

    /// <summary>
    /// Quantizes one row: <paramref name="src"/> (a whole number of blocks) into <paramref name="dst"/>,
    /// which must hold <see cref="GgmlTypeInfo.RowBytes"/> bytes.
    /// </summary>
    public static void Row(GgmlType type, ReadOnlySpan<float> src, Span<byte> dst)
    {
        if (!IsSupported(type))
            throw new NotSupportedException($"quantizing to {type} is not supported");
        int block = GgmlTypeInfo.BlockSize(type);
        if (src.Length % block != 0)
            throw new ArgumentException($"{type} rows hold a multiple of {block} values, got {src.Length}", nameof(src));
        long need = GgmlTypeInfo.RowBytes(type, src.Length);
        if (dst.Length < need)
            throw new ArgumentException($"{src.Length} values of {type} take {need} bytes, destination has {dst.Length}", nameof(dst));

        int blockBytes = GgmlTypeInfo.BlockBytes(type);
        int blocks = src.Length / block;
        for (int b = 0; b < blocks; b++)
        {
            var x = src.Slice(b * block, block);
            var y = dst.Slice(b * blockBytes, blockBytes);
            switch (type)
            {
                case GgmlType.F32: BinaryPrimitives.WriteSingleLittleEndian(y, x[0]); break;
                case GgmlType.F16: BinaryPrimitives.WriteUInt16LittleEndian(y, HalfBits(x[0])); break;
                case GgmlType.BF16: BinaryPrimitives.WriteUInt16LittleEndian(y, BFloat16Bits(x[0])); break;
                case GgmlType.Q8_0: Q8_0(x, y); break;
                case GgmlType.Q4_0: Q4_0(x, y); break;
                case GgmlType.Q4_1: Q4_1(x, y); break;
                case GgmlType.Q5_0: Q5_0(x, y); break;
                case GgmlType.Q5_1: Q5_1(x, y); break;
                case GgmlType.Q4_K: KQuants.Q4_K(x, y); break;
                case GgmlType.Q5_K: KQuants.Q5_K(x, y); break;
                case GgmlType.Q6_K: KQuants.Q6_K(x, y); break;
            }
        }
    }

    /// <summary>Quantizes a row-major rows x cols matrix; the result is rows consecutive rows of <paramref name="type"/>.</summary>
    public static byte[] Matrix(GgmlType type, ReadOnlySpan<float> values, int rows, int cols)
    {
        if (rows < 0 || cols < 0 || (long)rows * cols != values.Length)
            throw new ArgumentException($"a {rows}x{cols} matrix needs {(long)rows * cols} values, got {values.Length}", nameof(values));
        if (!IsSupported(type))
            throw new NotSupportedException($"quantizing to {type} is not supported");
        if (cols % GgmlTypeInfo.BlockSize(type) != 0)
            throw new ArgumentException($"{type} row length {cols} is not a multiple of the block size {GgmlTypeInfo.BlockSize(type)}", nameof(cols));
        int rowBytes = (int)GgmlTypeInfo.RowBytes(type, cols);
        var bytes = new byte[(long)rowBytes * rows];
        for (int r = 0; r < rows; r++)
            Row(type, values.Slice(r * cols, cols), bytes.AsSpan(r * rowBytes, rowBytes));
        return bytes;
    }

    /// <summary>IEEE half bits of <paramref name="value"/>, rounded to nearest even (what F16C's <c>vcvtps2ph</c> gives ggml).</summary>
    public static ushort HalfBits(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>
    /// bfloat16 bits of <paramref name="value"/> as ggml rounds them: nearest even on the 16 dropped bits,
    /// NaN kept as a quiet NaN with its sign and top payload.
    /// </summary>
    public static ushort BFloat16Bits(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }

    // x = d * q, q = round(x / d) in -127..127, d = amax / 127.
    private static void Q8_0(ReadOnlySpan<float> x, Span<byte> y)
    {
        float amax = 0;
        foreach (float v in x) amax = Math.Max(amax, MathF.Abs(v));
        float d = amax / 127;
        float id = d != 0 ? 1.0f / d : 0.0f;
        BinaryPrimitives.WriteUInt16LittleEndian(y, HalfBits(d));
        for (int j = 0; j < 32; j++)
            y[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
    }

    // x = d * (q - 8): the value of largest magnitude maps to q = 0 (d carries its sign), so -8 is used and +8 is not.
    private static void Q4_0(ReadOnlySpan<float> x, Span<byte> y)
    {
        float max = SignedAbsMax(x);
        float d = max / -8;
        float id = d != 0 ? 1.0f / d : 0.0f;
        BinaryPrimitives.WriteUInt16LittleEndian(y, HalfBits(d));
        for (int j = 0; j < 16; j++)
        {
            int lo = Math.Min(15, Truncate(x[j] * id + 8.5f));
            int hi = Math.Min(15, Truncate(x[j + 16] * id + 8.5f));
            y[2 + j] = (byte)(lo | (hi << 4));
        }
    }

    // x = d * q + m with q in 0..15, m the block minimum.
    private static void Q4_1(ReadOnlySpan<float> x, Span<byte> y)
    {
        var (min, max) = MinMax(x);
        float d = (max - min) / 15;
        float id = d != 0 ? 1.0f / d : 0.0f;
        BinaryPrimitives.WriteUInt16LittleEndian(y, HalfBits(d));
        BinaryPrimitives.WriteUInt16LittleEndian(y[2..], HalfBits(min));
        for (int j = 0; j < 16; j++)
        {
            int lo = Math.Min(15, Truncate((x[j] - min) * id + 0.5f));
            int hi = Math.Min(15, Truncate((x[j + 16] - min) * id + 0.5f));
            y[4 + j] = (byte)(lo | (hi << 4));
        }
    }

    // x = d * (q - 16), q in 0..31; the fifth bit of value j is bit j of the 32-bit qh.
    private static void Q5_0(ReadOnlySpan<float> x, Span<byte> y)
    {
        float max = SignedAbsMax(x);
        float d = max / -16;
        float id = d != 0 ? 1.0f / d : 0.0f;
        BinaryPrimitives.WriteUInt16LittleEndian(y, HalfBits(d));
        uint qh = 0;
        for (int j = 0; j < 16; j++)
        {
            int lo = Math.Min(31, Truncate(x[j] * id + 16.5f));
            int hi = Math.Min(31, Truncate(x[j + 16] * id + 16.5f));
            y[6 + j] = (byte)((lo & 0x0F) | ((hi & 0x0F) << 4));
            qh |= (uint)((lo >> 4) & 1) << j;
            qh |= (uint)((hi >> 4) & 1) << (j + 16);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(y[2..], qh);
    }

    // x = d * q + m, q in 0..31.
    private static void Q5_1(ReadOnlySpan<float> x, Span<byte> y)
    {
        var (min, max) = MinMax(x);
        float d = (max - min) / 31;
        float id = d != 0 ? 1.0f / d : 0.0f;
        BinaryPrimitives.WriteUInt16LittleEndian(y, HalfBits(d));
        BinaryPrimitives.WriteUInt16LittleEndian(y[2..], HalfBits(min));
        uint qh = 0;
        for (int j = 0; j < 16; j++)
        {
            int lo = (byte)Truncate((x[j] - min) * id + 0.5f);
            int hi = (byte)Truncate((x[j + 16] - min) * id + 0.5f);
            y[8 + j] = (byte)((lo & 0x0F) | ((hi & 0x0F) << 4));
            qh |= (uint)((lo >> 4) & 1) << j;
            qh |= (uint)((hi >> 4) & 1) << (j + 16);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(y[4..], qh);
    }

    /// <summary>The value with the largest magnitude (the first one on ties), sign kept.</summary>
    internal static float SignedAbsMax(ReadOnlySpan<float> x)
    {
        float amax = 0, max = 0;
        foreach (float v in x)
            if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
        return max;
    }

    private static (float Min, float Max) MinMax(ReadOnlySpan<float> x)
    {
        float min = float.MaxValue, max = -float.MaxValue;
        foreach (float v in x)
        {
            if (v < min) min = v;
            if (v > max) max = v;
        }
        return (min, max);
    }

    // C's float-to-integer conversion: toward zero.
    private static int Truncate(float v) => (int)v;
}
