using System.Runtime.Intrinsics;
using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// The small operations of the forward pass on one row: norms, RoPE, activations, soft-caps, sums. The matrix products
/// and attention's inner loops live in <see cref="Tensors"/>; these are plain loops (vectorized where it is the same
/// arithmetic), so each row's result is the same in any batch.
/// </summary>
internal static class Ops
{
    /// <summary>out = weight * x / sqrt(mean(x²) + eps). The squares are summed in double, in order, as llama.cpp does:
    /// the same scale to the last bit keeps 8-bit activation rounding the same in both engines.</summary>
    public static void RmsNorm(Span<float> output, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps)
    {
        float mean = (float)(SumOfSquares(x) / x.Length);
        float scale = 1.0f / MathF.Sqrt(mean + eps);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= x.Length; i += 8)
                (Vector256.Create(x.Slice(i, 8)) * scale * Vector256.Create(weight.Slice(i, 8))).CopyTo(output.Slice(i, 8));
        for (; i < x.Length; i++)
            output[i] = x[i] * scale * weight[i];
    }

    /// <summary>Σ x², each square taken in float and summed in double (eight lanes of partial sums, then the rest).</summary>
    private static double SumOfSquares(ReadOnlySpan<float> x)
    {
        double sum = 0;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<double> low = default, high = default;
            for (; i + 8 <= x.Length; i += 8)
            {
                var v = Vector256.Create(x.Slice(i, 8));
                var (l, h) = Vector256.Widen(v * v);
                (low, high) = (low + l, high + h);
            }
            sum = Vector256.Sum(low + high);
        }
        for (; i < x.Length; i++) sum += x[i] * x[i];
        return sum;
    }

    /// <summary>out = weight * (x - mean) / sqrt(var + eps) + bias (no bias when it is empty).</summary>
    public static void LayerNorm(Span<float> output, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps)
    {
        float mean = 0;
        foreach (float v in x) mean += v;
        mean /= x.Length;
        float variance = 0;
        foreach (float v in x) variance += (v - mean) * (v - mean);
        float inv = 1.0f / MathF.Sqrt(variance / x.Length + eps);
        for (int i = 0; i < x.Length; i++)
            output[i] = weight[i] * ((x[i] - mean) * inv) + (bias.IsEmpty ? 0 : bias[i]);
    }

    /// <summary>cos and sin of pos * theta_i for every frequency theta_i: the rotation of pair i at position pos.</summary>
    public static void RopeAngles(int pos, ReadOnlySpan<float> theta, Span<float> cos, Span<float> sin)
    {
        for (int i = 0; i < theta.Length; i++)
        {
            float angle = pos * theta[i];
            cos[i] = MathF.Cos(angle);
            sin[i] = MathF.Sin(angle);
        }
    }

    /// <summary>RoPE: rotates pair i of every head of <paramref name="vec"/> by the angle whose cos and sin are given. A
    /// pair is elements (2i, 2i+1) of the head (<see cref="RopeStyle.Adjacent"/>) or (i, i + head_size/2)
    /// (<see cref="RopeStyle.Halves"/>); (a, b) becomes (a cos - b sin, a sin + b cos).</summary>
    public static void Rope(Span<float> vec, int headSize, RopeStyle style, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = headSize / 2;
        for (int head = 0; head < vec.Length; head += headSize)
        {
            Span<float> v = vec.Slice(head, headSize);
            if (style == RopeStyle.Adjacent)
                for (int i = 0; i < half; i++) Rotate(ref v[2 * i], ref v[2 * i + 1], cos[i], sin[i]);
            else
                for (int i = 0; i < half; i++) Rotate(ref v[i], ref v[i + half], cos[i], sin[i]);
        }
    }

    private static void Rotate(ref float a, ref float b, float cos, float sin) =>
        (a, b) = (a * cos - b * sin, a * sin + b * cos);

    private const float SqrtTwoOverPi = 0.7978845608f;

    /// <summary>x = gelu(x), tanh approximation: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x³))).</summary>
    public static void Gelu(Span<float> x)
    {
        for (int i = 0; i < x.Length; i++)
        {
            float g = x[i];
            x[i] = 0.5f * g * (1.0f + MathF.Tanh(SqrtTwoOverPi * (g + 0.044715f * g * g * g)));
        }
    }

    /// <summary>gate = gelu(gate) * up.</summary>
    public static void GeluGated(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            float g = gate[i];
            gate[i] = 0.5f * g * (1.0f + MathF.Tanh(SqrtTwoOverPi * (g + 0.044715f * g * g * g))) * up[i];
        }
    }

    /// <summary>x = cap * tanh(x / cap): keeps every value inside (-cap, cap), nearly unchanged when small.</summary>
    public static void Softcap(Span<float> x, float cap)
    {
        for (int i = 0; i < x.Length; i++) x[i] = cap * MathF.Tanh(x[i] / cap);
    }

    /// <summary>x = a x.</summary>
    public static void Scale(Span<float> x, float a)
    {
        for (int i = 0; i < x.Length; i++) x[i] *= a;
    }

    /// <summary>x = x + y.</summary>
    public static void Add(Span<float> x, ReadOnlySpan<float> y) => Sum(x, x, y);

    /// <summary>output = a + b, element by element (output may be a).</summary>
    public static void Sum(Span<float> output, ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= output.Length; i += 8)
                (Vector256.Create(a.Slice(i, 8)) + Vector256.Create(b.Slice(i, 8))).CopyTo(output.Slice(i, 8));
        for (; i < output.Length; i++) output[i] = a[i] + b[i];
    }
}
