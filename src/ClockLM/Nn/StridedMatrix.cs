namespace ClockLM.Nn;

/// <summary>
/// A float matrix in memory by its two strides: element (i, j) is at <c>Data[i·RowStride + j·ColumnStride]</c>. A
/// row-major matrix of n columns has strides (n, 1); its transpose is the same memory with the strides swapped, so
/// <see cref="Gemm"/> reads dyᵀ or Wᵀ without copying them.
/// </summary>
internal readonly unsafe struct StridedMatrix(float* data, int rowStride, int columnStride)
{
    /// <summary>Element (0, 0).</summary>
    public readonly float* Data = data;

    /// <summary>Floats from one row to the next.</summary>
    public readonly int RowStride = rowStride;

    /// <summary>Floats from one column to the next.</summary>
    public readonly int ColumnStride = columnStride;

    /// <summary>Element (i, j).</summary>
    public float this[int i, int j] => Data[(long)i * RowStride + (long)j * ColumnStride];

    /// <summary>A row-major matrix of <paramref name="columns"/> values per row (or a row-major block of a wider one:
    /// <paramref name="columns"/> is then the row stride).</summary>
    public static StridedMatrix RowMajor(float* data, int columns) => new(data, columns, 1);

    /// <summary>The transpose of a row-major matrix of <paramref name="columns"/> values per row.</summary>
    public static StridedMatrix Transposed(float* data, int columns) => new(data, 1, columns);
}
