using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// The inner loops of attention for one query head over a KV cache whose rows (one per position) lie
/// <c>stride</c> floats apart: the scores q·k_t, their softmax, and the weighted sum of the values. Small heads (8 or
/// 16 values, as in the tiny models) would spend most of their time in per-position calls; these loops run over all
/// positions at once. The scalar paths sum left to right; the vector paths (head sizes that are multiples of 8) sum in
/// a fixed other order, so they differ from the scalar ones by float rounding only, and always give the same score
/// for the same key whatever the number of positions.
/// </summary>
internal static unsafe class AttentionKernels
{
    /// <summary>scores[t] = scale · (q · keys[t·stride .. t·stride + q.Length)) for every t of <paramref name="scores"/>.</summary>
    public static void Scores(ReadOnlySpan<float> q, ReadOnlySpan<float> keys, int stride, float scale, Span<float> scores) =>
        Scores(q, keys, stride, scale, scores, KernelOptions.BestPath);

    /// <summary><see cref="Scores(ReadOnlySpan{float}, ReadOnlySpan{float}, int, float, Span{float})"/> on a chosen path.</summary>
    internal static void Scores(ReadOnlySpan<float> q, ReadOnlySpan<float> keys, int stride, float scale, Span<float> scores, KernelPath path)
    {
        int n = scores.Length, headSize = q.Length;
        if (n == 0) return;
        CheckRows(keys.Length, n, stride, headSize, "keys");
        fixed (float* pq = q)
        fixed (float* pk = keys)
        fixed (float* ps = scores)
        {
            if (path >= KernelPath.Vector256 && headSize % 8 == 0 && Avx2.IsSupported && Fma.IsSupported)
                ScoresVector256(pq, pk, stride, headSize, scale, ps, n);
            else
                ScoresScalar(pq, pk, stride, headSize, scale, ps, n);
        }
    }

    /// <summary>output[i] = Σ_t weights[t] · values[t·stride + i] for every i of <paramref name="output"/> (which is overwritten).</summary>
    public static void WeightedSum(ReadOnlySpan<float> weights, ReadOnlySpan<float> values, int stride, Span<float> output) =>
        WeightedSum(weights, values, stride, output, KernelOptions.BestPath);

    /// <summary><see cref="WeightedSum(ReadOnlySpan{float}, ReadOnlySpan{float}, int, Span{float})"/> on a chosen path.</summary>
    internal static void WeightedSum(ReadOnlySpan<float> weights, ReadOnlySpan<float> values, int stride, Span<float> output, KernelPath path)
    {
        int n = weights.Length, headSize = output.Length;
        output.Clear();
        if (n == 0) return;
        CheckRows(values.Length, n, stride, headSize, "values");
        fixed (float* pw = weights)
        fixed (float* pv = values)
        fixed (float* po = output)
        {
            if (path >= KernelPath.Vector256 && headSize % 8 == 0 && Fma.IsSupported)
                WeightedSumVector256(pw, pv, stride, headSize, po, n);
            else
                WeightedSumScalar(pw, pv, stride, headSize, po, n);
        }
    }

    /// <summary>In-place softmax, subtracting the maximum for stability, with <see cref="Exponential"/>.</summary>
    public static void Softmax(Span<float> x) => Softmax(x, KernelOptions.BestPath);

    /// <summary><see cref="Softmax(Span{float})"/> on a chosen path.</summary>
    internal static void Softmax(Span<float> x, KernelPath path)
    {
        if (x.IsEmpty) return;
        fixed (float* p = x)
        {
            if (path >= KernelPath.Vector256 && Fma.IsSupported)
                SoftmaxVector256(p, x.Length);
            else
                SoftmaxScalar(p, x.Length);
        }
    }

    private static void CheckRows(int length, int rows, int stride, int headSize, string name)
    {
        if (stride < headSize || length < (long)(rows - 1) * stride + headSize)
            throw new ArgumentException($"attention {name}: {rows} rows of {headSize} values {stride} apart need {(long)(rows - 1) * stride + headSize} floats, got {length}");
    }

    // ---- scalar references

    private static void ScoresScalar(float* q, float* k, int stride, int headSize, float scale, float* scores, int n)
    {
        for (int t = 0; t < n; t++, k += stride)
        {
            float s = 0;
            for (int i = 0; i < headSize; i++) s += q[i] * k[i];
            scores[t] = s * scale;
        }
    }

    private static void WeightedSumScalar(float* w, float* v, int stride, int headSize, float* output, int n)
    {
        for (int t = 0; t < n; t++, v += stride)
            for (int i = 0; i < headSize; i++) output[i] += w[t] * v[i];
    }

    private static void SoftmaxScalar(float* x, int n)
    {
        float max = float.NegativeInfinity;
        for (int i = 0; i < n; i++) max = MathF.Max(max, x[i]);
        float sum = 0;
        for (int i = 0; i < n; i++)
        {
            x[i] = Exponential.Exp(x[i] - max);
            sum += x[i];
        }
        float inverse = 1 / sum;
        for (int i = 0; i < n; i++) x[i] *= inverse;
    }

    // ---- 256-bit vectors

    /// <summary>Lane j of the result: q · k_{t+j}, eight positions at once. The eight products are reduced together,
    /// lane sums in the order ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)); missing rows (count &lt; 8) are zero.</summary>
    private static void ScoresVector256(float* q, float* k, int stride, int headSize, float scale, float* scores, int n)
    {
        var s = Vector256.Create(scale);
        int t = 0;
        for (; t + 8 <= n; t += 8, k += 8 * stride)
        {
            var p0 = Products(q, k, headSize);
            var p1 = Products(q, k + stride, headSize);
            var p2 = Products(q, k + 2 * stride, headSize);
            var p3 = Products(q, k + 3 * stride, headSize);
            var p4 = Products(q, k + 4 * stride, headSize);
            var p5 = Products(q, k + 5 * stride, headSize);
            var p6 = Products(q, k + 6 * stride, headSize);
            var p7 = Products(q, k + 7 * stride, headSize);
            Vector256.Store(LaneSums.Of8(p0, p1, p2, p3, p4, p5, p6, p7) * s, scores + t);
        }
        if (t == n) return;
        int left = n - t;
        var z = Vector256<float>.Zero;
        var last = LaneSums.Of8(
            Products(q, k, headSize),
            left > 1 ? Products(q, k + stride, headSize) : z,
            left > 2 ? Products(q, k + 2 * stride, headSize) : z,
            left > 3 ? Products(q, k + 3 * stride, headSize) : z,
            left > 4 ? Products(q, k + 4 * stride, headSize) : z,
            left > 5 ? Products(q, k + 5 * stride, headSize) : z,
            left > 6 ? Products(q, k + 6 * stride, headSize) : z,
            z) * s;
        float* tail = stackalloc float[8];
        Vector256.Store(last, tail);
        for (int j = 0; j < left; j++) scores[t + j] = tail[j];
    }

    /// <summary>Lane i: Σ over chunks c of q[8c + i] · k[8c + i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Products(float* q, float* k, int headSize)
    {
        var p = Vector256.Load(q) * Vector256.Load(k);
        for (int c = 8; c < headSize; c += 8)
            p = Vector256.FusedMultiplyAdd(Vector256.Load(q + c), Vector256.Load(k + c), p);
        return p;
    }

    /// <summary>Heads of 32 values or more: four vectors of a row at a time, one accumulator each. Smaller ones: one
    /// vector, positions t mod 4 into four accumulators added as (a0 + a1) + (a2 + a3).</summary>
    private static void WeightedSumVector256(float* w, float* values, int stride, int headSize, float* output, int n)
    {
        int c = 0;
        for (; c + 32 <= headSize; c += 32)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            float* v = values + c;
            for (int t = 0; t < n; t++, v += stride)
            {
                var wt = Vector256.Create(w[t]);
                a0 = Vector256.FusedMultiplyAdd(wt, Vector256.Load(v), a0);
                a1 = Vector256.FusedMultiplyAdd(wt, Vector256.Load(v + 8), a1);
                a2 = Vector256.FusedMultiplyAdd(wt, Vector256.Load(v + 16), a2);
                a3 = Vector256.FusedMultiplyAdd(wt, Vector256.Load(v + 24), a3);
            }
            Vector256.Store(a0, output + c);
            Vector256.Store(a1, output + c + 8);
            Vector256.Store(a2, output + c + 16);
            Vector256.Store(a3, output + c + 24);
        }
        for (; c < headSize; c += 8)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            float* v = values + c;
            int t = 0;
            for (; t + 4 <= n; t += 4, v += 4 * stride)
            {
                a0 = Vector256.FusedMultiplyAdd(Vector256.Create(w[t]), Vector256.Load(v), a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.Create(w[t + 1]), Vector256.Load(v + stride), a1);
                a2 = Vector256.FusedMultiplyAdd(Vector256.Create(w[t + 2]), Vector256.Load(v + 2 * stride), a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.Create(w[t + 3]), Vector256.Load(v + 3 * stride), a3);
            }
            for (; t < n; t++, v += stride)
                a0 = Vector256.FusedMultiplyAdd(Vector256.Create(w[t]), Vector256.Load(v), a0);
            Vector256.Store((a0 + a1) + (a2 + a3), output + c);
        }
    }

    /// <summary>The maximum, then e^(x - max) eight at a time (the tail with the scalar twin of the same exponential),
    /// the sum of lanes added to the tail's sum, then every value times the sum's reciprocal.</summary>
    private static void SoftmaxVector256(float* x, int n)
    {
        int i = 0;
        var vmax = Vector256.Create(float.NegativeInfinity);
        // maxps: a NaN score may be skipped here, but it still makes the sum, and so every weight, NaN.
        for (; i + 8 <= n; i += 8) vmax = Vector256.MaxNative(vmax, Vector256.Load(x + i));
        float max = n >= 8 ? HorizontalMax(vmax) : float.NegativeInfinity;
        for (; i < n; i++) max = MathF.Max(max, x[i]);

        int full = n & ~7;
        var vsum = ExpShifted(x, full, max);
        float tail = 0;
        for (i = full; i < n; i++)
        {
            x[i] = Exponential.Exp(x[i] - max);
            tail += x[i];
        }
        float sum = Vector256.Sum(vsum) + tail;

        float inverse = 1 / sum;
        var d = Vector256.Create(inverse);
        for (i = 0; i + 8 <= n; i += 8) Vector256.Store(Vector256.Load(x + i) * d, x + i);
        for (; i < n; i++) x[i] *= inverse;
    }

    /// <summary>x[i] = e^(x[i] - max) for i &lt; n (a multiple of 8); returns the sums by lane. A loop of its own, with no
    /// call in it, so that the running sum stays in a register.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Vector256<float> ExpShifted(float* x, int n, float max)
    {
        var m = Vector256.Create(max);
        var sum = Vector256<float>.Zero;
        for (int i = 0; i < n; i += 8)
        {
            var e = Exponential.Exp(Vector256.Load(x + i) - m);
            Vector256.Store(e, x + i);
            sum += e;
        }
        return sum;
    }

    private static float HorizontalMax(Vector256<float> v)
    {
        var m = Vector128.MaxNative(v.GetLower(), v.GetUpper());
        return MathF.Max(MathF.Max(m[0], m[1]), MathF.Max(m[2], m[3]));
    }
}
