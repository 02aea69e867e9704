using System.Buffers.Binary;

namespace ClockLM.Tensors;

/// <summary>Scalar reference conversions from each block layout to floats (ggml's <c>dequantize_row_*</c>).</summary>
public static class Dequantize
{
    /// <summary>Converts one row of <paramref name="type"/> blocks to floats.</summary>
    public static void Row(GgmlType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        switch (type)
        {
            case GgmlType.F32:
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(src)[..dst.Length].CopyTo(dst);
                break;
            case GgmlType.F16:
                for (int i = 0; i < dst.Length; i++)
                    dst[i] = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]));
                break;
            case GgmlType.BF16:
                for (int i = 0; i < dst.Length; i++)
                    dst[i] = BFloat16ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]));
                break;
            case GgmlType.Q8_0:
                // block: f16 d, int8 q[32];  x = d * q
                for (int b = 0; b < dst.Length / 32; b++)
                {
                    var block = src.Slice(b * 34, 34);
                    float d = Half(block);
                    for (int j = 0; j < 32; j++) dst[b * 32 + j] = d * (sbyte)block[2 + j];
                }
                break;
            case GgmlType.Q4_0:
                // block: f16 d, uint8 qs[16]; low nibbles are values 0..15, high nibbles 16..31; x = d * (q - 8)
                for (int b = 0; b < dst.Length / 32; b++)
                {
                    var block = src.Slice(b * 18, 18);
                    float d = Half(block);
                    for (int j = 0; j < 16; j++)
                    {
                        dst[b * 32 + j] = d * ((block[2 + j] & 0x0F) - 8);
                        dst[b * 32 + j + 16] = d * ((block[2 + j] >> 4) - 8);
                    }
                }
                break;
            default:
                throw new NotSupportedException($"dequantizing {type} is not supported");
        }
    }

    /// <summary>The f16 stored in the first two bytes, as a float.</summary>
    public static float Half(ReadOnlySpan<byte> bytes) =>
        (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(bytes));

    /// <summary>bfloat16 bits to float: the top 16 bits of an IEEE single.</summary>
    public static float BFloat16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);
}
