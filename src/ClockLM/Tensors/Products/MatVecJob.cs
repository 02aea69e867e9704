using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>The rows of one matrix-vector product, as a job a <see cref="WorkerPool"/> can split.</summary>
internal unsafe struct MatVecJob : IRowRangeJob
{
    public GgmlType Type;
    public KernelPath Path;
    public byte* Weights;
    public int RowBytes;
    public int Cols;
    public float* X;
    public float* Y;
    public ActivationBlocks? Activations;
    public float* ScaledX;
    public FiniteHalves? Halves;  // F16 rows: told of any infinity or NaN the watching kernel meets
    public bool KnownFinite;      // F16 rows: every value known finite, so the kernel need not watch (HalfMatVec)
    public bool Wide;             // F16/BF16 rows in HalfMatVec: the 512-bit loop (same bits)
    public bool Panels;           // F16/BF16 weights laid out in panels (HalfPanels; F16 ones finite), Rows of them
    public int Rows;

    /// <summary>True when F16 rows go through <see cref="FloatDots.F16Rows"/> (the first product of a matrix) or
    /// <see cref="HalfMatVec.F16Rows"/> (once it is known finite), which read <see cref="ScaledX"/>.</summary>
    public readonly bool UsesF16Rows => Path == KernelPath.Vector256 && Type == GgmlType.F16 && Fma.IsSupported;

    public readonly void Execute(int start, int end)
    {
        switch (Path)
        {
            case KernelPath.Vector256 when Panels && Type == GgmlType.F16: HalfMatVec.F16PanelRows(Weights, Rows, Cols, X, ScaledX, Y, start, end, Wide); break;
            case KernelPath.Vector256 when Panels: HalfMatVec.BF16PanelRows(Weights, Rows, Cols, X, Y, start, end, Wide); break;
            case KernelPath.Vector256 when Type == GgmlType.F32: F32MatVec.Rows(Weights, RowBytes, Cols, X, Y, start, end); break;
            case KernelPath.Vector256 when UsesF16Rows && KnownFinite: HalfMatVec.F16Rows(Weights, RowBytes, Cols, X, ScaledX, Y, start, end, Wide); break;
            case KernelPath.Vector256 when Type == GgmlType.BF16 && Fma.IsSupported: HalfMatVec.BF16Rows(Weights, RowBytes, Cols, X, Y, start, end, Wide); break;
            case KernelPath.Vector256 when UsesF16Rows: FloatDots.F16Rows(Weights, RowBytes, Cols, X, ScaledX, Y, start, end, Halves); break;
            case KernelPath.Scalar: RowDots.Rows<ScalarDots>(this, start, end); break;
            case KernelPath.Vector128: RowDots.Rows<Vector128Dots>(this, start, end); break;
            default: RowDots.Rows<Avx2Dots>(this, start, end); break;
        }
    }
}
