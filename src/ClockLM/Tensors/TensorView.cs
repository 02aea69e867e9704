namespace ClockLM.Tensors;

/// <summary>
/// A read-only 2-D tensor (rows x cols, row-major, each row in <see cref="Type"/>'s block layout) over memory
/// owned by someone else: usually a memory-mapped model file, which must stay open while the view is used.
/// A vector is a view with one row.
/// </summary>
public readonly unsafe struct TensorView
{
    private readonly byte* _data;
    private readonly byte* _packed;

    /// <summary>Creates a view over <paramref name="data"/>, which must hold rows*rowBytes bytes and outlive the view.</summary>
    public TensorView(GgmlType type, int rows, int cols, byte* data)
    {
        if (cols % GgmlTypeInfo.BlockSize(type) != 0)
            throw new ArgumentException($"{type} row length {cols} is not a multiple of the block size {GgmlTypeInfo.BlockSize(type)}");
        Type = type;
        Rows = rows;
        Cols = cols;
        _data = data;
    }

    private TensorView(in TensorView view, byte* packed)
    {
        this = view;
        _packed = packed;
    }

    /// <summary>This view with a packed copy of its rows (see <see cref="PackedRows"/>) that the AVX2 products use
    /// instead of <see cref="Data"/>; the copy must outlive the view.</summary>
    internal TensorView WithPacked(byte* packed) => new(this, packed);

    /// <summary>The rows packed eight at a time for the AVX2 products (<see cref="PackedRows"/>), or null.</summary>
    internal byte* Packed => _packed;

    /// <summary>True when the products read a packed copy of the rows rather than <see cref="Data"/>.</summary>
    internal bool IsPacked => _packed != null;

    /// <summary>
    /// Reads one byte of every 4 KB page of the tensor's bytes, from the first on, so that memory-mapped pages not yet
    /// in memory are brought in (the operating system reads ahead around each); stops early, returning false, once
    /// <paramref name="stop"/> says so. Returns a sum of the bytes read so the reads are not optimised away.
    /// </summary>
    internal int TouchPages(ref bool stop)
    {
        int sum = 0;
        for (long offset = 0; offset < ByteCount; offset += 4096)
        {
            sum += _data[offset];
            if (Volatile.Read(ref stop)) break;
        }
        return sum;
    }

    /// <summary>A view over managed memory that must be pinned for the lifetime of the view (e.g. a pinned array).</summary>
    public static TensorView Pinned(GgmlType type, int rows, int cols, byte[] pinnedArray)
    {
        fixed (byte* p = pinnedArray) return new TensorView(type, rows, cols, p);
    }

    /// <summary>Element type.</summary>
    public GgmlType Type { get; }

    /// <summary>Number of rows (output features of a weight matrix).</summary>
    public int Rows { get; }

    /// <summary>Values per row (input features of a weight matrix).</summary>
    public int Cols { get; }

    /// <summary>Bytes one row takes.</summary>
    public int RowBytes => (int)GgmlTypeInfo.RowBytes(Type, Cols);

    /// <summary>Bytes the whole tensor takes.</summary>
    public long ByteCount => (long)RowBytes * Rows;

    /// <summary>Pointer to the first byte.</summary>
    public byte* Data => _data;

    /// <summary>True when both views cover the same memory with the same shape and type.</summary>
    public bool SameData(in TensorView other) => _data == other._data && Type == other.Type && Rows == other.Rows && Cols == other.Cols;

    /// <summary>Rows [first, first + count) as a matrix of their own, over the same memory (unpacked).</summary>
    public TensorView RowRange(int first, int count)
    {
        if (first < 0 || count < 0 || first > Rows - count)
            throw new ArgumentOutOfRangeException(nameof(first), $"rows [{first}, {first + count}) lie outside a tensor of {Rows} rows");
        return new TensorView(Type, count, Cols, _data + (long)first * RowBytes);
    }

    /// <summary>The bytes of row <paramref name="row"/>.</summary>
    public ReadOnlySpan<byte> Row(int row)
    {
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row), row, $"tensor has {Rows} rows");
        return new ReadOnlySpan<byte>(_data + (long)row * RowBytes, RowBytes);
    }

    /// <summary>Writes row <paramref name="row"/> as floats into <paramref name="destination"/>.</summary>
    public void DequantizeRow(int row, Span<float> destination) => Dequantize.Row(Type, Row(row), destination[..Cols]);
}
