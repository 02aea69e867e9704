using System.Runtime.InteropServices;

namespace ClockLM.Tensors;

/// <summary>Float rows to block layouts (temporary minimal version: F32 and F16).</summary>
public static class Quantize
{
    public static void Row(GgmlType type, ReadOnlySpan<float> src, Span<byte> dst)
    {
        switch (type)
        {
            case GgmlType.F32: MemoryMarshal.AsBytes(src).CopyTo(dst); break;
            case GgmlType.F16:
                for (int i = 0; i < src.Length; i++)
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(dst[(2 * i)..], BitConverter.HalfToUInt16Bits((Half)src[i]));
                break;
            default: throw new NotSupportedException($"quantizing to {type} is not supported");
        }
    }
}
