using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// The rows of one matrix-matrix product (<see cref="MatMul"/>), as a job a <see cref="WorkerPool"/> can split.
/// Rows are taken <see cref="RowBlock"/> at a time and multiplied with the vectors a group at a time, so a block of
/// weight rows and a group of activation vectors stay in the first-level cache together.
/// </summary>
internal unsafe struct MatMulJob : IRowRangeJob
{
    /// <summary>Weight rows per block.</summary>
    public const int RowBlock = 8;

    /// <summary>Vectors per group of the quantized tiles (their activation blocks share the cache with the rows).</summary>
    public const int QuantizedGroup = 8;

    /// <summary>Vectors from which Q4_0 rows are interleaved eight at a time (<see cref="RowOctets"/>).</summary>
    public const int Q4_0OctetsFrom = 4;

    /// <summary>Vectors from which Q8_0 rows are interleaved eight at a time.</summary>
    public const int Q8_0OctetsFrom = 4;

    /// <summary>Vectors from which Q4_K and Q6_K rows are interleaved eight at a time (<see cref="KQuantOctets"/>).</summary>
    public const int KQuantOctetsFrom = 4;

    public GgmlType Type;
    public KernelPath Path;
    public byte* Weights;
    public int RowBytes;
    public int Cols;
    public int Rows;
    public int Count;
    public float* X;      // (Count, Cols)
    public float* Y;      // (Count, Rows)
    public ActivationBlocks[]? Activations;
    public bool Wide;     // F16/BF16 tiles of 512-bit registers (FloatTiles), where AVX-512 runs and the options ask for it
    public bool Panels;   // F16/BF16 weights laid out in panels (HalfPanels; F16 ones finite)

    public readonly void Execute(int start, int end)
    {
        bool avx2 = Path == KernelPath.Vector256 && Avx2.IsSupported && Fma.IsSupported;
        if (avx2 && Type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16)
        {
            FloatTiles.Rows(this, start, end);
            return;
        }
        if (avx2 && Type == GgmlType.Q4_0 && Count >= Q4_0OctetsFrom)
        {
            RowOctets.Rows<Q4_0Octets>(this, start, end);
            return;
        }
        if (avx2 && Type == GgmlType.Q8_0 && Count >= Q8_0OctetsFrom)
        {
            RowOctets.Rows<Q8_0Octets>(this, start, end);
            return;
        }
        if (avx2 && Type == GgmlType.Q4_0 && Cols / 32 >= 8)
        {
            QuantizedTiles.Rows<QuantizedTiles.Q4_0Tile, RowDots.Q4_0Term>(this, start, end);
            return;
        }
        if (avx2 && Type == GgmlType.Q8_0 && Cols / 32 >= 8)
        {
            QuantizedTiles.Rows<QuantizedTiles.Q8_0Tile, RowDots.Q8_0Term>(this, start, end);
            return;
        }
        if (avx2 && Type == GgmlType.Q4_K && Count >= KQuantOctetsFrom)
        {
            KQuantOctets.Q4_KRows(this, start, end);
            return;
        }
        if (avx2 && Type == GgmlType.Q6_K && Count >= KQuantOctetsFrom)
        {
            KQuantOctets.Q6_KRows(this, start, end);
            return;
        }
        if (avx2 && Type == GgmlType.Q4_K)
        {
            KQuantTiles.Q4_KRows(this, start, end);
            return;
        }
        if (avx2 && Type == GgmlType.Q6_K)
        {
            KQuantTiles.Q6_KRows(this, start, end);
            return;
        }
        // Any other type or path: the one-vector row kernel for each vector, on a block of rows at a time.
        for (int r0 = start; r0 < end; r0 += RowBlock)
        {
            int r1 = Math.Min(r0 + RowBlock, end);
            for (int t = 0; t < Count; t++)
                VectorJob(t).Execute(r0, r1);
        }
    }

    /// <summary>The matrix-vector product of vector <paramref name="t"/>, whose rows are the same computation.</summary>
    public readonly MatVecJob VectorJob(int t) => new()
    {
        Type = Type, Path = Path, Weights = Weights, RowBytes = RowBytes, Cols = Cols,
        X = X + (long)t * Cols, Y = Y + (long)t * Rows, Activations = Activations?[t], Panels = Panels, Rows = Rows,
    };
}
