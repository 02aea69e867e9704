using System.Numerics;

namespace ClockLM.Nn;

/// <summary>The activation a <see cref="Dense{T}"/> layer applies to its pre-activation z = x·W + b.</summary>
public enum Activation
{
    /// <summary>No activation: the layer outputs z (Keras's <c>None</c> / <c>"linear"</c>).</summary>
    Linear,
    /// <summary>σ(z) = 1 / (1 + e^-z).</summary>
    Sigmoid,
    /// <summary>max(0, z).</summary>
    Relu,
    /// <summary>tanh(z).</summary>
    Tanh,
    /// <summary>GELU, tanh form.</summary>
    Gelu,
    /// <summary>SiLU: z·σ(z).</summary>
    Silu,
    /// <summary>Softmax over the units of each row.</summary>
    Softmax,
}

/// <summary>Scalar activation functions shared by the tensor operations and by code that checks them.</summary>
public static class Activations
{
    private const double GeluScale = 0.7978845608028654; // √(2/π)
    private const double GeluCubic = 0.044715;

    /// <summary>Applies <paramref name="activation"/> to a tensor.</summary>
    public static Tensor<T> Apply<T>(this Tensor<T> z, Activation activation) where T : unmanaged, IFloatingPointIeee754<T> =>
        activation switch
        {
            Activation.Linear => z,
            Activation.Sigmoid => z.Sigmoid(),
            Activation.Relu => z.Relu(),
            Activation.Tanh => z.Tanh(),
            Activation.Gelu => z.Gelu(),
            Activation.Silu => z.Silu(),
            Activation.Softmax => z.Softmax(),
            _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "unknown activation"),
        };

    /// <summary>σ(x) = 1 / (1 + e^-x), computed without overflow for large |x|.</summary>
    public static T Sigmoid<T>(T x) where T : IFloatingPointIeee754<T>
    {
        if (x >= T.Zero) return T.One / (T.One + T.Exp(-x));
        T e = T.Exp(x);
        return e / (T.One + e);
    }

    /// <summary>GELU, tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    public static T Gelu<T>(T x) where T : IFloatingPointIeee754<T>
    {
        T u = T.CreateChecked(GeluScale) * (x + T.CreateChecked(GeluCubic) * x * x * x);
        return T.CreateChecked(0.5) * x * (T.One + T.Tanh(u));
    }

    /// <summary>d/dx of <see cref="Gelu{T}"/>: 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²), t = tanh(u).</summary>
    public static T GeluDerivative<T>(T x) where T : IFloatingPointIeee754<T>
    {
        T half = T.CreateChecked(0.5);
        T u = T.CreateChecked(GeluScale) * (x + T.CreateChecked(GeluCubic) * x * x * x);
        T t = T.Tanh(u);
        T du = T.CreateChecked(GeluScale) * (T.One + T.CreateChecked(3 * GeluCubic) * x * x);
        return half * (T.One + t) + half * x * (T.One - t * t) * du;
    }

    /// <summary>Softmax of one row, shifted by its maximum so that e^x cannot overflow.</summary>
    public static void SoftmaxRow<T>(ReadOnlySpan<T> x, Span<T> y) where T : IFloatingPointIeee754<T>
    {
        T max = T.NegativeInfinity;
        foreach (T v in x) max = T.Max(max, v);
        T sum = T.Zero;
        for (int i = 0; i < x.Length; i++)
        {
            y[i] = T.Exp(x[i] - max);
            sum += y[i];
        }
        for (int i = 0; i < x.Length; i++) y[i] /= sum;
    }
}
