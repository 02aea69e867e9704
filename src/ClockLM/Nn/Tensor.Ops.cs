using System.Numerics;

namespace ClockLM.Nn;

// The differentiable operations. Each computes its value, then registers a closure that adds
// d(loss)/d(parent) = d(loss)/d(out) · d(out)/d(parent) into each parent that wants a gradient.
public sealed partial class Tensor<T>
{
    /// <summary>Matrix product: this (m×k) · <paramref name="other"/> (k×n) → (m×n).</summary>
    public Tensor<T> MatMul(Tensor<T> other)
    {
        if (Rank != 2 || other.Rank != 2 || Shape[1] != other.Shape[0])
            throw new ShapeMismatchException("MatMul", Shape, other.Shape, "expected (m×k) @ (k×n)");
        int m = Shape[0], k = Shape[1], n = other.Shape[1];
        var a = this;
        var result = new T[m * n];
        MatMulKernel.MatMul(a.Data, other.Data, result, m, k, n);
        var output = Result([m, n], result, a, other);
        output.SetBackward(() =>
        {
            // C = A·B  ⇒  dA = dC·Bᵀ,  dB = Aᵀ·dC
            if (a.RequiresGrad) MatMulKernel.MatMulGradA(output._grad!, other.Data, a.EnsureGrad(), m, k, n);
            if (other.RequiresGrad) MatMulKernel.MatMulGradB(a.Data, output._grad!, other.EnsureGrad(), m, k, n);
        });
        return output;
    }

    /// <summary>
    /// Elementwise sum. <paramref name="other"/> has this tensor's shape, or is a bias of shape [n] (or [1, n])
    /// added to every row of a tensor whose last dimension is n. A <paramref name="compute"/> context shares equal-shape
    /// sums out over its threads in blocks of 4096 values (same values).
    /// </summary>
    public Tensor<T> Add(Tensor<T> other, ComputeContext? compute = null)
    {
        var a = this;
        if (SameShape(Shape, other.Shape))
        {
            const int block = 4096;
            int length = Length, blocks = (length + block - 1) / block;
            var sum = NewData(compute, length, zeroed: false);
            Split(compute, blocks, length, (start, end) =>
            {
                for (int i = start * block; i < Math.Min(length, end * block); i++) sum[i] = a.Data[i] + other.Data[i];
            });
            var same = Result(Shape, sum, a, other);
            same.SetBackward(() =>
            {
                var g = same._grad!;
                var ga = a.RequiresGrad ? a.EnsureGrad(compute) : null;
                var go = other.RequiresGrad ? other.EnsureGrad(compute) : null;
                Split(compute, blocks, 2L * length, (start, end) =>
                {
                    int from = start * block, count = Math.Min(length, end * block) - from;
                    if (ga != null) AddInto(ga.AsSpan(from, count), g.AsSpan(from, count));
                    if (go != null) AddInto(go.AsSpan(from, count), g.AsSpan(from, count));
                });
            });
            return same;
        }

        bool isBias = Rank >= 1 && other.Length == Columns
            && (other.Rank == 1 || (other.Rank == 2 && other.Shape[0] == 1));
        if (!isBias)
            throw new ShapeMismatchException("Add", Shape, other.Shape, $"expected equal shapes or a bias of shape [{Columns}]");
        int rows = Rows, cols = Columns;
        var data = new T[Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                data[r * cols + c] = a.Data[r * cols + c] + other.Data[c];
        var output = Result(Shape, data, a, other);
        output.SetBackward(() =>
        {
            var g = output._grad!;
            if (a.RequiresGrad) AddInto(a.EnsureGrad(), g);
            if (other.RequiresGrad)
            {
                // The bias was used by every row, so its gradient sums over rows.
                var gb = other.EnsureGrad();
                for (int r = 0; r < rows; r++)
                    MatMulKernel.Axpy<T>(gb, T.One, g.AsSpan(r * cols, cols));
            }
        });
        return output;
    }

    /// <summary>Elementwise difference of two tensors of the same shape.</summary>
    public Tensor<T> Sub(Tensor<T> other)
    {
        RequireSameShape("Sub", other);
        var a = this;
        var data = new T[Length];
        for (int i = 0; i < data.Length; i++) data[i] = a.Data[i] - other.Data[i];
        var output = Result(Shape, data, a, other);
        output.SetBackward(() =>
        {
            var g = output._grad!;
            if (a.RequiresGrad) AddInto(a.EnsureGrad(), g);
            if (other.RequiresGrad)
            {
                var go = other.EnsureGrad();
                for (int i = 0; i < go.Length; i++) go[i] -= g[i];
            }
        });
        return output;
    }

    /// <summary>Elementwise product of two tensors of the same shape.</summary>
    public Tensor<T> Mul(Tensor<T> other)
    {
        RequireSameShape("Mul", other);
        var a = this;
        var data = new T[Length];
        for (int i = 0; i < data.Length; i++) data[i] = a.Data[i] * other.Data[i];
        var output = Result(Shape, data, a, other);
        output.SetBackward(() =>
        {
            var g = output._grad!;
            if (a.RequiresGrad)
            {
                var ga = a.EnsureGrad();
                for (int i = 0; i < ga.Length; i++) ga[i] += g[i] * other.Data[i];
            }
            if (other.RequiresGrad)
            {
                var go = other.EnsureGrad();
                for (int i = 0; i < go.Length; i++) go[i] += g[i] * a.Data[i];
            }
        });
        return output;
    }

    /// <summary>Elementwise sum; see <see cref="Add"/>.</summary>
    public static Tensor<T> operator +(Tensor<T> a, Tensor<T> b) => a.Add(b);

    /// <summary>Elementwise difference; see <see cref="Sub"/>.</summary>
    public static Tensor<T> operator -(Tensor<T> a, Tensor<T> b) => a.Sub(b);

    /// <summary>Elementwise product; see <see cref="Mul"/>.</summary>
    public static Tensor<T> operator *(Tensor<T> a, Tensor<T> b) => a.Mul(b);

    /// <summary>σ(x) = 1 / (1 + e^-x); σ' = σ(1 − σ).</summary>
    public Tensor<T> Sigmoid() => Unary(Activations.Sigmoid, static (_, y) => y * (T.One - y));

    /// <summary>max(0, x); derivative 1 for x &gt; 0, else 0.</summary>
    public Tensor<T> Relu() => Unary(static x => x > T.Zero ? x : T.Zero, static (x, _) => x > T.Zero ? T.One : T.Zero);

    /// <summary>tanh(x); derivative 1 − tanh².</summary>
    public Tensor<T> Tanh() => Unary(T.Tanh, static (_, y) => T.One - y * y);

    /// <summary>
    /// GELU in its tanh form, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (as GPT-2 and ggml use);
    /// it differs from the erf form by less than 1e-3.
    /// </summary>
    public Tensor<T> Gelu() => Unary(Activations.Gelu, static (x, _) => Activations.GeluDerivative(x));

    /// <summary>SiLU (swish): x·σ(x); derivative σ(x)·(1 + x·(1 − σ(x))).</summary>
    public Tensor<T> Silu() => Unary(static x => x * Activations.Sigmoid(x), static (x, _) =>
    {
        T s = Activations.Sigmoid(x);
        return s * (T.One + x * (T.One - s));
    });

    /// <summary>Softmax over the last dimension: e^(x_i − max) / Σ_j e^(x_j − max).</summary>
    public Tensor<T> Softmax()
    {
        int rows = Rows, cols = Columns;
        var a = this;
        var y = new T[Length];
        for (int r = 0; r < rows; r++)
            Activations.SoftmaxRow(a.Data.AsSpan(r * cols, cols), y.AsSpan(r * cols, cols));
        var output = Result(Shape, y, a);
        output.SetBackward(() =>
        {
            // dx_i = y_i · (dy_i − Σ_j dy_j·y_j)
            var g = output._grad!;
            var ga = a.EnsureGrad();
            for (int r = 0; r < rows; r++)
            {
                int o = r * cols;
                T dot = MatMulKernel.Dot<T>(g.AsSpan(o, cols), y.AsSpan(o, cols));
                for (int c = 0; c < cols; c++) ga[o + c] += y[o + c] * (g[o + c] - dot);
            }
        });
        return output;
    }

    /// <summary>Log-softmax over the last dimension: (x_i − max) − log Σ_j e^(x_j − max).</summary>
    public Tensor<T> LogSoftmax()
    {
        int rows = Rows, cols = Columns;
        var a = this;
        var y = new T[Length];
        for (int r = 0; r < rows; r++)
        {
            var x = a.Data.AsSpan(r * cols, cols);
            T max = T.NegativeInfinity;
            foreach (T v in x) max = T.Max(max, v);
            T sum = T.Zero;
            foreach (T v in x) sum += T.Exp(v - max);
            // (x − max) first: subtracting a large max + log Σ at once would lose the small part.
            T logSum = T.Log(sum);
            for (int c = 0; c < cols; c++) y[r * cols + c] = (x[c] - max) - logSum;
        }
        var output = Result(Shape, y, a);
        output.SetBackward(() =>
        {
            // dx_i = dy_i − softmax_i · Σ_j dy_j, with softmax_i = e^(y_i)
            var g = output._grad!;
            var ga = a.EnsureGrad();
            for (int r = 0; r < rows; r++)
            {
                int o = r * cols;
                T sum = T.Zero;
                for (int c = 0; c < cols; c++) sum += g[o + c];
                for (int c = 0; c < cols; c++) ga[o + c] += g[o + c] - T.Exp(y[o + c]) * sum;
            }
        });
        return output;
    }

    /// <summary>The sum of all values, as a one-value tensor.</summary>
    public Tensor<T> Sum()
    {
        var a = this;
        T sum = T.Zero;
        foreach (T v in a.Data) sum += v;
        var output = Result([], [sum], a);
        output.SetBackward(() =>
        {
            T g = output._grad![0];
            var ga = a.EnsureGrad();
            for (int i = 0; i < ga.Length; i++) ga[i] += g;
        });
        return output;
    }

    /// <summary>The mean of all values, as a one-value tensor.</summary>
    public Tensor<T> Mean()
    {
        if (Length == 0)
            throw new InvalidOperationException($"Mean of an empty tensor of shape {ShapeMismatchException.Format(Shape)}");
        var a = this;
        T n = T.CreateChecked(Length);
        T sum = T.Zero;
        foreach (T v in a.Data) sum += v;
        var output = Result([], [sum / n], a);
        output.SetBackward(() =>
        {
            T g = output._grad![0] / n;
            var ga = a.EnsureGrad();
            for (int i = 0; i < ga.Length; i++) ga[i] += g;
        });
        return output;
    }

    /// <summary>Applies f elementwise; <paramref name="derivative"/>(x, f(x)) gives df/dx.</summary>
    private Tensor<T> Unary(Func<T, T> f, Func<T, T, T> derivative)
    {
        var a = this;
        var y = new T[Length];
        for (int i = 0; i < y.Length; i++) y[i] = f(a.Data[i]);
        var output = Result(Shape, y, a);
        output.SetBackward(() =>
        {
            var g = output._grad!;
            var ga = a.EnsureGrad();
            for (int i = 0; i < ga.Length; i++) ga[i] += g[i] * derivative(a.Data[i], y[i]);
        });
        return output;
    }

    private void RequireSameShape(string operation, Tensor<T> other)
    {
        if (!SameShape(Shape, other.Shape))
            throw new ShapeMismatchException(operation, Shape, other.Shape, "expected equal shapes");
    }

    internal static bool SameShape(int[] a, int[] b) => a.AsSpan().SequenceEqual(b);

    private static void AddInto(Span<T> target, ReadOnlySpan<T> source) => MatMulKernel.Axpy<T>(target, T.One, source);
}
