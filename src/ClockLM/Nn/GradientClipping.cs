using System.Numerics;

namespace ClockLM.Nn;

/// <summary>Gradient clipping by global norm: when ‖g‖ (over all parameters together) exceeds a limit, every gradient is
/// scaled by limit/‖g‖, so the update keeps its direction but not an outlier batch's size.</summary>
public static class GradientClipping
{
    /// <summary>Scales the gradients of <paramref name="parameters"/> so that their global norm is at most
    /// <paramref name="maxNorm"/>; returns the norm before clipping. A <paramref name="compute"/> context takes each
    /// parameter's sum of squares on one of its threads and adds them in parameter order, as without one.</summary>
    public static double ClipByGlobalNorm<T>(IReadOnlyList<Tensor<T>> parameters, double maxNorm, ComputeContext? compute = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!(maxNorm > 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "the clipping norm must be positive");
        var squares = new double[parameters.Count];
        long total = parameters.Sum(p => (long)p.Length);
        void Squares(int start, int end)
        {
            for (int i = start; i < end; i++)
                if (parameters[i].Grad is { } g)
                    squares[i] = double.CreateChecked(MatMulKernel.Dot<T>(g, g));
        }
        if (compute is null) Squares(0, parameters.Count);
        else compute.For(parameters.Count, total, Squares);
        double sumSquares = 0;
        foreach (double s in squares) sumSquares += s;
        double norm = Math.Sqrt(sumSquares);
        if (norm > maxNorm)
        {
            T factor = T.CreateChecked(maxNorm / norm);
            foreach (var p in parameters)
                if (p.Grad is { } g)
                    Scale(g, factor);
        }
        return norm;
    }

    private static void Scale<T>(Span<T> values, T factor) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var lanes = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(values);
            var f = new Vector<T>(factor);
            for (int v = 0; v < lanes.Length; v++) lanes[v] *= f;
            i = lanes.Length * Vector<T>.Count;
        }
        for (; i < values.Length; i++) values[i] *= factor;
    }
}
