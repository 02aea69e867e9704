using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace ClockLM.Tensors;

/// <summary>
/// Rows of a KV cache as attention reads them in place: <see cref="Count"/> rows (one per position) of
/// <see cref="RowBytes"/> bytes each, stored as <see cref="Type"/> (F32, F16 or Q8_0), of which one head is read: its
/// values <see cref="Offset"/>.. of each row.
/// </summary>
internal readonly ref struct CacheRows(ReadOnlySpan<byte> bytes, GgmlType type, int rowBytes, int offset, int count, bool finiteHalves = false)
{
    public ReadOnlySpan<byte> Bytes { get; } = bytes;
    public GgmlType Type { get; } = type;
    public int RowBytes { get; } = rowBytes;
    public int Offset { get; } = offset;
    public int Count { get; } = count;

    /// <summary>True when the rows are F16 and the one who stored them vouches that no half in them is infinite or NaN
    /// (<see cref="AllFinite"/>): the vector kernels then widen them in three operations instead of eleven, with the same
    /// results. False (the default) always gives the exact widening.</summary>
    public bool FiniteHalves { get; } = finiteHalves && type == GgmlType.F16;

    /// <summary>Stores <paramref name="values"/> (a whole row) as <paramref name="type"/> into <paramref name="row"/>:
    /// copied (F32), rounded to nearest even (F16), or quantized as ggml's reference quantizer does (Q8_0).</summary>
    public static void Store(GgmlType type, ReadOnlySpan<float> values, Span<byte> row)
    {
        switch (type)
        {
            case GgmlType.F32:
                MemoryMarshal.AsBytes(values).CopyTo(row);
                break;
            case GgmlType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(row);
                for (int i = 0; i < values.Length; i++) halves[i] = (Half)values[i];
                break;
            case GgmlType.Q8_0:
                Quantize.Row(GgmlType.Q8_0, values, row);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "a KV cache row is F32, F16 or Q8_0");
        }
    }

    /// <summary>True unless a value of <paramref name="row"/>, stored as <paramref name="type"/>, is an infinite or NaN
    /// half (exponent bits all ones); rows of other types are always true, their kernels not depending on it.</summary>
    public static bool AllFinite(GgmlType type, ReadOnlySpan<byte> row)
    {
        if (type != GgmlType.F16) return true;
        var halves = MemoryMarshal.Cast<byte, ushort>(row);
        int i = 0;
        var exponent = Vector128.Create((ushort)0x7c00);
        for (; i + 8 <= halves.Length; i += 8)
        {
            var e = Vector128.Create(halves.Slice(i, 8)) & exponent;
            if (Vector128.EqualsAny(e, exponent)) return false;
        }
        for (; i < halves.Length; i++)
            if ((halves[i] & 0x7c00) == 0x7c00) return false;
        return true;
    }

    /// <summary>The row's values as floats (exactly the values attention reads).</summary>
    public static void Load(GgmlType type, ReadOnlySpan<byte> row, Span<float> values) => Dequantize.Row(type, row, values);

    /// <summary>Throws unless every row holds values <see cref="Offset"/>..+<paramref name="headSize"/> and the rows fit
    /// <see cref="Bytes"/>.</summary>
    public void Check(int headSize, string name)
    {
        long need = GgmlTypeInfo.RowBytes(Type, RoundUp(Offset + headSize, GgmlTypeInfo.BlockSize(Type)));
        if (Offset < 0 || RowBytes < need || Count < 0 || Bytes.Length < (Count == 0 ? 0 : (long)(Count - 1) * RowBytes + need))
            throw new ArgumentException($"attention {name}: {Count} {Type} rows of {RowBytes} bytes holding values {Offset}..{Offset + headSize - 1} " +
                $"need {(Count == 0 ? 0 : (long)(Count - 1) * RowBytes + need)} bytes and rows of at least {need}, got {Bytes.Length}");
    }

    private static int RoundUp(int n, int block) => (n + block - 1) / block * block;
}
