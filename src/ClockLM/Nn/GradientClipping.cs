using System.Numerics;

namespace ClockLM.Nn;

/// <summary>Gradient clipping by global norm: when ‖g‖ (over all parameters together) exceeds a limit, every gradient is
/// scaled by limit/‖g‖, so the update keeps its direction but not an outlier batch's size.</summary>
public static class GradientClipping
{
    /// <summary>Scales the gradients of <paramref name="parameters"/> so that their global norm is at most
    /// <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public static double ClipByGlobalNorm<T>(IReadOnlyList<Tensor<T>> parameters, double maxNorm) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!(maxNorm > 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "the clipping norm must be positive");
        double sumSquares = 0;
        foreach (var p in parameters)
            if (p.Grad is { } g)
                sumSquares += double.CreateChecked(MatMulKernel.Dot<T>(g, g));
        double norm = Math.Sqrt(sumSquares);
        if (norm > maxNorm)
        {
            T factor = T.CreateChecked(maxNorm / norm);
            foreach (var p in parameters)
                if (p.Grad is { } g)
                    for (int i = 0; i < g.Length; i++) g[i] *= factor;
        }
        return norm;
    }
}
