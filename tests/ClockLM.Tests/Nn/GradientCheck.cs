using ClockLM.Nn;

namespace ClockLM.Tests.Nn;

/// <summary>Compares the gradients from Backward with central finite differences, in float64.</summary>
public static class GradientCheck
{
    private const double H = 1e-5;

    /// <summary>
    /// The largest relative error |analytic − numeric| / max(|analytic|, |numeric|) over every value of every input
    /// that requires a gradient. A tensor-valued f is reduced to Σ f·R with fixed random weights R, so every
    /// output value contributes with a different weight.
    /// </summary>
    public static double MaxRelativeError(Func<Tensor<double>> f, IReadOnlyList<Tensor<double>> inputs, int seed = 7) =>
        MaxError(f, inputs, seed, perTensor: false);

    /// <summary>
    /// The largest error |analytic − numeric| of any value, relative to the largest |analytic| of its tensor: for
    /// graphs deep enough that some gradient values are tiny beside their neighbours, where the per-value relative
    /// error of <see cref="MaxRelativeError"/> measures the finite differences' own error rather than the gradient's.
    /// </summary>
    public static double MaxErrorPerTensor(Func<Tensor<double>> f, IReadOnlyList<Tensor<double>> inputs, int seed = 7) =>
        MaxError(f, inputs, seed, perTensor: true);

    private static double MaxError(Func<Tensor<double>> f, IReadOnlyList<Tensor<double>> inputs, int seed, bool perTensor)
    {
        var first = f();
        Tensor<double>? weights = null;
        if (first.Length != 1)
        {
            var random = new Random(seed);
            weights = new Tensor<double>(first.Shape, [.. Enumerable.Range(0, first.Length).Select(_ => random.NextDouble() * 2 - 1)]);
        }
        Tensor<double> Objective() => weights is null ? f() : (f() * weights).Sum();

        foreach (var input in inputs) input.ZeroGrad();
        Objective().Backward();

        double worst = 0;
        foreach (var input in inputs.Where(t => t.RequiresGrad))
        {
            Assert.NotNull(input.Grad);
            double largest = perTensor ? input.Grad!.Max(Math.Abs) : 0;
            for (int i = 0; i < input.Length; i++)
            {
                double original = input.Data[i];
                input.Data[i] = original + H;
                double plus = Objective().Scalar;
                input.Data[i] = original - H;
                double minus = Objective().Scalar;
                input.Data[i] = original;
                double numeric = (plus - minus) / (2 * H);
                double analytic = input.Grad![i];
                double scale = perTensor ? Math.Max(largest, 1e-9) : Math.Max(Math.Max(Math.Abs(analytic), Math.Abs(numeric)), 1e-9);
                worst = Math.Max(worst, Math.Abs(analytic - numeric) / scale);
            }
        }
        return worst;
    }

    /// <summary>A tensor of values drawn uniformly from [lo, hi].</summary>
    public static Tensor<double> Random(int[] shape, Random random, double lo = -2, double hi = 2, bool requiresGrad = true)
    {
        int n = shape.Aggregate(1, (a, b) => a * b);
        return new Tensor<double>(shape, [.. Enumerable.Range(0, n).Select(_ => lo + (hi - lo) * random.NextDouble())], requiresGrad);
    }
}
