using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ClockLM.Tensors;

namespace ClockLM.Nn;

/// <summary>
/// Row kernels of the training graph's float path: the SwiGLU gate and its derivative, and the log-sum-exp and
/// shifted exponentials of softmax (attention, cross-entropy). Each runs eight lanes at a time and has a scalar twin
/// (<c>…Scalar</c>) doing the same float operations in the same order, so the two give the same bits; e^x is
/// <see cref="Exponential"/>'s, whose vector and scalar forms agree bit for bit.
/// </summary>
internal static class FloatRows
{
    /// <summary>True where the 8-lane path runs (it needs fused multiply-adds for the scalar twin's bits).</summary>
    public static bool Vectorized => Gemm.Vectorized;

    /// <summary>y = silu(g)·u = g·σ(g)·u, with σ(g) = 1 / (1 + e^−g).</summary>
    public static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        int i = 0;
        if (Vectorized)
        {
            ref float g = ref MemoryMarshal.GetReference(gate);
            ref float u = ref MemoryMarshal.GetReference(up);
            ref float o = ref MemoryMarshal.GetReference(y);
            for (; i + 8 <= y.Length; i += 8)
            {
                var gv = Vector256.LoadUnsafe(ref g, (nuint)i);
                var s = Vector256<float>.One / (Vector256<float>.One + Exponential.Exp(-gv));
                (gv * s * Vector256.LoadUnsafe(ref u, (nuint)i)).StoreUnsafe(ref o, (nuint)i);
            }
        }
        SwiGluScalar(gate[i..], up[i..], y[i..]);
    }

    /// <summary>Scalar twin of <see cref="SwiGlu"/>.</summary>
    public static void SwiGluScalar(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++)
        {
            float g = gate[i], s = 1f / (1f + Exponential.Exp(-g));
            y[i] = g * s * up[i];
        }
    }

    /// <summary>The SwiGLU gradients: dg += dy·u·σ·(1 + g·(1 − σ)), du += dy·g·σ.</summary>
    public static void SwiGluBackward(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, ReadOnlySpan<float> dy, Span<float> dGate, Span<float> dUp)
    {
        int i = 0;
        if (Vectorized)
        {
            ref float g = ref MemoryMarshal.GetReference(gate);
            ref float u = ref MemoryMarshal.GetReference(up);
            ref float d = ref MemoryMarshal.GetReference(dy);
            ref float dg = ref MemoryMarshal.GetReference(dGate);
            ref float du = ref MemoryMarshal.GetReference(dUp);
            var one = Vector256<float>.One;
            for (; i + 8 <= dy.Length; i += 8)
            {
                var gv = Vector256.LoadUnsafe(ref g, (nuint)i);
                var uv = Vector256.LoadUnsafe(ref u, (nuint)i);
                var dv = Vector256.LoadUnsafe(ref d, (nuint)i);
                var s = one / (one + Exponential.Exp(-gv));
                (Vector256.LoadUnsafe(ref dg, (nuint)i) + dv * uv * s * (one + gv * (one - s))).StoreUnsafe(ref dg, (nuint)i);
                (Vector256.LoadUnsafe(ref du, (nuint)i) + dv * gv * s).StoreUnsafe(ref du, (nuint)i);
            }
        }
        SwiGluBackwardScalar(gate[i..], up[i..], dy[i..], dGate[i..], dUp[i..]);
    }

    /// <summary>Scalar twin of <see cref="SwiGluBackward"/>.</summary>
    public static void SwiGluBackwardScalar(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, ReadOnlySpan<float> dy, Span<float> dGate, Span<float> dUp)
    {
        for (int i = 0; i < dy.Length; i++)
        {
            float g = gate[i], s = 1f / (1f + Exponential.Exp(-g));
            dGate[i] += dy[i] * up[i] * s * (1f + g * (1f - s));
            dUp[i] += dy[i] * g * s;
        }
    }

    /// <summary>
    /// ln Σ_j e^(scale·x_j) computed as m + ln Σ_j e^(scale·x_j − m) with m = max_j scale·x_j, so no term overflows.
    /// The sum runs in eight lanes (value j in lane j mod 8, up to the last multiple of 8), reduced as
    /// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), then the remaining values in order.
    /// </summary>
    public static float LogSumExp(ReadOnlySpan<float> x, float scale)
    {
        if (!Vectorized || x.Length < 8) return LogSumExpScalar(x, scale);
        ref float r = ref MemoryMarshal.GetReference(x);
        int full = x.Length & ~7;
        var vmax = Vector256.Create(float.NegativeInfinity);
        for (int i = 0; i < full; i += 8) vmax = Vector256.Max(vmax, Vector256.LoadUnsafe(ref r, (nuint)i));
        float max = vmax[0];
        for (int l = 1; l < 8; l++) max = MathF.Max(max, vmax[l]);
        for (int i = full; i < x.Length; i++) max = MathF.Max(max, x[i]);
        float shift = scale * max;
        var vscale = Vector256.Create(scale);
        var vshift = Vector256.Create(-shift);
        var sum = Vector256<float>.Zero;
        for (int i = 0; i < full; i += 8)
            sum += Exponential.Exp(Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r, (nuint)i), vscale, vshift));
        float total = ((sum[0] + sum[1]) + (sum[2] + sum[3])) + ((sum[4] + sum[5]) + (sum[6] + sum[7]));
        for (int i = full; i < x.Length; i++) total += Exponential.Exp(MathF.FusedMultiplyAdd(x[i], scale, -shift));
        return shift + MathF.Log(total);
    }

    /// <summary>Scalar twin of <see cref="LogSumExp"/> (for a positive <paramref name="scale"/>: the largest of scale·x is scale times the largest x).</summary>
    public static float LogSumExpScalar(ReadOnlySpan<float> x, float scale)
    {
        float max = float.NegativeInfinity;
        foreach (float v in x) max = MathF.Max(max, v);
        float shift = scale * max;
        int full = x.Length >= 8 ? x.Length & ~7 : 0;
        Span<float> lanes = stackalloc float[8];
        lanes.Clear();
        for (int i = 0; i < full; i++) lanes[i & 7] += Exponential.Exp(MathF.FusedMultiplyAdd(x[i], scale, -shift));
        float total = full > 0 ? ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7])) : 0f;
        for (int i = full; i < x.Length; i++) total += Exponential.Exp(MathF.FusedMultiplyAdd(x[i], scale, -shift));
        return shift + MathF.Log(total);
    }

    /// <summary>y_j = e^(scale·x_j − shift): softmax probabilities when shift is <see cref="LogSumExp"/> of the row.</summary>
    public static void ExpShifted(ReadOnlySpan<float> x, float scale, float shift, Span<float> y)
    {
        int i = 0;
        if (Vectorized)
        {
            ref float r = ref MemoryMarshal.GetReference(x);
            ref float o = ref MemoryMarshal.GetReference(y);
            var vscale = Vector256.Create(scale);
            var vshift = Vector256.Create(-shift);
            for (; i + 8 <= x.Length; i += 8)
                Exponential.Exp(Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref r, (nuint)i), vscale, vshift)).StoreUnsafe(ref o, (nuint)i);
        }
        ExpShiftedScalar(x[i..], scale, shift, y[i..]);
    }

    /// <summary>Scalar twin of <see cref="ExpShifted"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ExpShiftedScalar(ReadOnlySpan<float> x, float scale, float shift, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = Exponential.Exp(MathF.FusedMultiplyAdd(x[i], scale, -shift));
    }
}
