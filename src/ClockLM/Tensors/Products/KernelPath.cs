namespace ClockLM.Tensors;

/// <summary>Which implementation of the dot-product kernels runs. Every path computes the same result as <see cref="Scalar"/>.</summary>
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
