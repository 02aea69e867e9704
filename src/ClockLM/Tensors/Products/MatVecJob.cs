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

    /// <summary>True when the rows go through <see cref="FloatDots.F16Rows"/>, which reads <see cref="ScaledX"/>.</summary>
    public readonly bool UsesF16Rows => Path == KernelPath.Vector256 && Type == GgmlType.F16 && Fma.IsSupported;

    public readonly void Execute(int start, int end)
    {
        switch (Path)
        {
            case KernelPath.Vector256 when Type == GgmlType.F32: F32MatVec.Rows(Weights, RowBytes, Cols, X, Y, start, end); break;
            case KernelPath.Vector256 when UsesF16Rows: FloatDots.F16Rows(Weights, RowBytes, Cols, X, ScaledX, Y, start, end); break;
            case KernelPath.Scalar: RowDots.Rows<ScalarDots>(this, start, end); break;
            case KernelPath.Vector128: RowDots.Rows<Vector128Dots>(this, start, end); break;
            default: RowDots.Rows<Avx2Dots>(this, start, end); break;
        }
    }
}
