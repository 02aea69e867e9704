namespace ClockLM.Tensors;

/// <summary>Block geometry of each <see cref="GgmlType"/>: how many values a block holds and how many bytes it takes.</summary>
public static class GgmlTypeInfo
{
    /// <summary>True when ClockLM knows this type's block layout.</summary>
    public static bool IsKnown(GgmlType type) => BlockBytes(type) > 0;

    /// <summary>Values per block (1 for plain element types, 32 for Q4_0/Q8_0…, 256 for K-quants).</summary>
    public static int BlockSize(GgmlType type) => type switch
    {
        GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.F64
            or GgmlType.I8 or GgmlType.I16 or GgmlType.I32 or GgmlType.I64 => 1,
        GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.Q8_0 or GgmlType.Q8_1 => 32,
        GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K or GgmlType.Q8_K => 256,
        _ => 0,
    };

    /// <summary>Bytes per block, or 0 for a type ClockLM does not know.</summary>
    public static int BlockBytes(GgmlType type) => type switch
    {
        GgmlType.F32 => 4,
        GgmlType.F16 => 2,
        GgmlType.BF16 => 2,
        GgmlType.F64 => 8,
        GgmlType.I8 => 1,
        GgmlType.I16 => 2,
        GgmlType.I32 => 4,
        GgmlType.I64 => 8,
        GgmlType.Q4_0 => 2 + 16,          // f16 scale, 32 x 4-bit
        GgmlType.Q4_1 => 2 + 2 + 16,      // f16 scale, f16 min, 32 x 4-bit
        GgmlType.Q5_0 => 2 + 4 + 16,      // f16 scale, 32 high bits, 32 x 4-bit
        GgmlType.Q5_1 => 2 + 2 + 4 + 16,  // f16 scale, f16 min, 32 high bits, 32 x 4-bit
        GgmlType.Q8_0 => 2 + 32,          // f16 scale, 32 x int8
        GgmlType.Q8_1 => 4 + 32,          // f16 scale, f16 sum, 32 x int8
        GgmlType.Q2_K => 84,
        GgmlType.Q3_K => 110,
        GgmlType.Q4_K => 144,
        GgmlType.Q5_K => 176,
        GgmlType.Q6_K => 210,
        GgmlType.Q8_K => 292,
        _ => 0,
    };

    /// <summary>Bytes taken by one row of <paramref name="count"/> values; the count must be a whole number of blocks.</summary>
    public static long RowBytes(GgmlType type, long count) => count / BlockSize(type) * BlockBytes(type);
}
