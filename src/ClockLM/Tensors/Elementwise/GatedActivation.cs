using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// The gate of a gated feed-forward network, elementwise over the hidden vector, with <see cref="Exponential"/>: the
/// vector path and its scalar twin perform the same float operations and give the same bits.
/// </summary>
internal static unsafe class GatedActivation
{
    /// <summary>gate = silu(gate) · up, silu(g) = g / (1 + e^-g).</summary>
    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up) => SwiGlu(gate, up, KernelOptions.BestPath);

    /// <summary><see cref="SwiGlu(Span{float}, ReadOnlySpan{float})"/> on a chosen path.</summary>
    internal static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up, KernelPath path)
    {
        if (up.Length < gate.Length)
            throw new ArgumentException($"swiglu: gate has {gate.Length} values, up only {up.Length}", nameof(up));
        int n = gate.Length, i = 0;
        fixed (float* g = gate)
        fixed (float* u = up)
        {
            if (path >= KernelPath.Vector256 && Fma.IsSupported)
                for (; i + 8 <= n; i += 8)
                {
                    var v = Vector256.Load(g + i);
                    Vector256.Store(v / (Vector256<float>.One + Exponential.Exp(-v)) * Vector256.Load(u + i), g + i);
                }
            for (; i < n; i++) g[i] = g[i] / (1.0f + Exponential.Exp(-g[i])) * u[i];
        }
    }
}
