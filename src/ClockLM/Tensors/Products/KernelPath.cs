namespace ClockLM.Tensors;

/// <summary>Which implementation of the kernels runs (chosen by <see cref="KernelOptions.Path"/>). On quantized weights
/// every path computes the same bits as <see cref="Scalar"/>; on F32, F16 and BF16 weights, and in attention, the vector
/// paths sum in another order and agree with it to float rounding.</summary>
public enum KernelPath
{
    /// <summary>Plain C#: the reference the others are tested against.</summary>
    Scalar,
    /// <summary>Portable 128-bit vectors (SSE, NEON, or software).</summary>
    Vector128,
    /// <summary>256-bit vectors: AVX2 integer dots for quantized weights, Vector256 FMA for float weights.</summary>
    Vector256,
    /// <summary>512-bit float kernels (F32/F16/BF16); quantized weights use the 256-bit integer path.</summary>
    Vector512,
}
