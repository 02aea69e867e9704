using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Rows of a KV cache as attention reads them in place: <see cref="Count"/> rows (one per position) of
/// <see cref="RowBytes"/> bytes each, stored as <see cref="Type"/> (F32, F16 or Q8_0), of which one head is read: its
/// values <see cref="Offset"/>.. of each row.
/// </summary>
internal readonly ref struct CacheRows(ReadOnlySpan<byte> bytes, GgmlType type, int rowBytes, int offset, int count)
{
    public ReadOnlySpan<byte> Bytes { get; } = bytes;
    public GgmlType Type { get; } = type;
    public int RowBytes { get; } = rowBytes;
    public int Offset { get; } = offset;
    public int Count { get; } = count;

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

/// <summary>How the attention kernels read one KV-cache row format: value i, or values i..i+7 (i a multiple of 8, so
/// that in Q8_0 the eight lie in one block). Every value comes out as the exact float the row stands for.</summary>
internal unsafe interface ICacheRowFormat
{
    static abstract float Load(byte* row, int i);
    static abstract Vector256<float> Load8(byte* row, int i);
}

/// <summary>Floats.</summary>
internal unsafe struct F32CacheRows : ICacheRowFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, int i) => ((float*)row)[i];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, int i) => Vector256.Load((float*)row + i);
}

/// <summary>Halves, widened exactly (infinities and NaNs included); eight at a time needs AVX2.</summary>
internal unsafe struct F16CacheRows : ICacheRowFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, int i) => HalfWidening.ToSingle(((ushort*)row)[i]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, int i) =>
        HalfWidening.Widen(Avx2.ConvertToVector256Int32((ushort*)row + i).AsUInt32());
}

/// <summary>Q8_0 blocks of 34 bytes (an f16 scale d, then 32 signed codes q): value d · q, exact in float (an 11-bit
/// significand times 7 bits), as <see cref="Dequantize"/> gives it. Eight at a time needs AVX2.</summary>
internal unsafe struct Q8_0CacheRows : ICacheRowFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, int i)
    {
        byte* block = row + i / 32 * 34;
        return HalfWidening.ToSingle(*(ushort*)block) * ((sbyte*)block)[2 + i % 32];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, int i)
    {
        byte* block = row + i / 32 * 34;
        var codes = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32((sbyte*)block + 2 + i % 32));
        return codes * Vector256.Create(HalfWidening.ToSingle(*(ushort*)block));
    }
}
