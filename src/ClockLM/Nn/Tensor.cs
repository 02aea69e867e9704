using System.Numerics;

namespace ClockLM.Nn;

/// <summary>
/// A dense row-major tensor that remembers how it was computed, so that <see cref="Backward"/> can
/// push gradients back to every tensor it depends on (reverse-mode automatic differentiation).
/// </summary>
/// <remarks>
/// Each operation (see <c>Tensor.Ops.cs</c>) returns a new tensor holding its parents and a closure
/// that, given this tensor's gradient, adds the chain-rule contribution into each parent's gradient.
/// <see cref="Backward"/> sorts the graph topologically and runs the closures from the output back.
/// Use <see cref="float"/> to train and <see cref="double"/> to check gradients against finite differences.
/// </remarks>
/// <typeparam name="T"><see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed partial class Tensor<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Tensor<T>[] _parents;
    private Action? _backward;
    private T[]? _grad;

    /// <summary>Creates a tensor over <paramref name="data"/> (not copied) with the given shape.</summary>
    /// <param name="shape">Dimensions, outermost first; an empty shape is a scalar.</param>
    /// <param name="data">Row-major values; its length must be the product of <paramref name="shape"/>.</param>
    /// <param name="requiresGrad">True for trainable parameters: <see cref="Backward"/> fills their <see cref="Grad"/>.</param>
    public Tensor(int[] shape, T[] data, bool requiresGrad = false)
        : this(shape, data, requiresGrad, [])
    {
    }

    private Tensor(int[] shape, T[] data, bool requiresGrad, Tensor<T>[] parents)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        long size = 1;
        foreach (int d in shape)
        {
            if (d < 0)
                throw new ArgumentException($"tensor shape {ShapeMismatchException.Format(shape)} has a negative dimension", nameof(shape));
            size *= d;
        }
        if (size != data.Length)
            throw new ArgumentException($"tensor shape {ShapeMismatchException.Format(shape)} holds {size} values but {data.Length} were given", nameof(data));
        Shape = shape;
        Data = data;
        RequiresGrad = requiresGrad;
        _parents = parents;
    }

    /// <summary>Dimensions, outermost first.</summary>
    public int[] Shape { get; }

    /// <summary>The values, row-major.</summary>
    public T[] Data { get; }

    /// <summary>d(output)/d(this) after <see cref="Backward"/>, same layout as <see cref="Data"/>; null until a gradient reaches this tensor.</summary>
    public T[]? Grad => _grad;

    /// <summary>True when a gradient is wanted for this tensor: a parameter, or a result computed from one.</summary>
    public bool RequiresGrad { get; }

    /// <summary>Number of values.</summary>
    public int Length => Data.Length;

    /// <summary>Number of dimensions.</summary>
    public int Rank => Shape.Length;

    /// <summary>The size of the last dimension (1 for a scalar).</summary>
    public int Columns => Shape.Length == 0 ? 1 : Shape[^1];

    /// <summary>The number of rows when the tensor is seen as a matrix of <see cref="Columns"/> columns.</summary>
    public int Rows => Columns == 0 ? 0 : Length / Columns;

    /// <summary>The value at (row, column) of a rank-2 tensor.</summary>
    public T this[int row, int column] => Data[row * Shape[1] + column];

    /// <summary>The single value of a one-element tensor (a loss, a reduction).</summary>
    public T Scalar => Length == 1
        ? Data[0]
        : throw new InvalidOperationException($"Scalar needs a tensor with one value, not shape {ShapeMismatchException.Format(Shape)}");

    /// <summary>A tensor of zeros.</summary>
    public static Tensor<T> Zeros(int[] shape, bool requiresGrad = false)
    {
        long size = 1;
        foreach (int d in shape) size *= d;
        return new Tensor<T>(shape, new T[size], requiresGrad);
    }

    /// <summary>A rank-2 tensor copied from a rectangular array.</summary>
    public static Tensor<T> FromArray(T[,] values, bool requiresGrad = false)
    {
        int rows = values.GetLength(0), cols = values.GetLength(1);
        var data = new T[rows * cols];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                data[i * cols + j] = values[i, j];
        return new Tensor<T>([rows, cols], data, requiresGrad);
    }

    /// <summary>A rank-1 tensor copied from <paramref name="values"/>.</summary>
    public static Tensor<T> FromArray(T[] values, bool requiresGrad = false) =>
        new([values.Length], (T[])values.Clone(), requiresGrad);

    /// <summary>The values of a rank-2 tensor as a rectangular array.</summary>
    public T[,] ToArray2D()
    {
        if (Rank != 2)
            throw new InvalidOperationException($"ToArray2D needs a rank-2 tensor, not shape {ShapeMismatchException.Format(Shape)}");
        var result = new T[Shape[0], Shape[1]];
        for (int i = 0; i < Shape[0]; i++)
            for (int j = 0; j < Shape[1]; j++)
                result[i, j] = Data[i * Shape[1] + j];
        return result;
    }

    /// <summary>Sets every gradient of this tensor to zero (optimisers call this on parameters before each step).</summary>
    public void ZeroGrad()
    {
        if (_grad != null) Array.Clear(_grad);
    }

    /// <summary>
    /// Computes d(this)/d(t) for every tensor t this one was computed from that <see cref="RequiresGrad"/>,
    /// adding it into t's <see cref="Grad"/>. This tensor must hold a single value (a loss).
    /// </summary>
    public void Backward()
    {
        if (Length != 1)
            throw new InvalidOperationException($"Backward starts from a single value (a loss), not shape {ShapeMismatchException.Format(Shape)}");
        if (!RequiresGrad)
            throw new InvalidOperationException("Backward: this value does not depend on any tensor that requires a gradient");

        // Topological order: every tensor after all the tensors it was computed from.
        var order = new List<Tensor<T>>();
        var visited = new HashSet<Tensor<T>>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Tensor<T> Node, bool Expanded)>();
        stack.Push((this, false));
        while (stack.Count > 0)
        {
            var (node, expanded) = stack.Pop();
            if (expanded) { order.Add(node); continue; }
            if (!visited.Add(node)) continue;
            stack.Push((node, true));
            foreach (var parent in node._parents)
                if (parent.RequiresGrad && !visited.Contains(parent))
                    stack.Push((parent, false));
        }

        EnsureGrad()[0] += T.One;
        for (int i = order.Count - 1; i >= 0; i--)
            order[i]._backward?.Invoke();
    }

    /// <summary>The gradient buffer, allocated (zeros) on first use, from <paramref name="compute"/>'s recycled arrays when given.</summary>
    internal T[] EnsureGrad(ComputeContext? compute = null) => _grad ??= compute?.Rent<T>(Data.Length, zeroed: true) ?? new T[Data.Length];

    /// <summary>
    /// Hands the value and gradient arrays of this tensor and of every operation result it was computed from back to
    /// <paramref name="compute"/>, whose next operations reuse them. Parameters and inputs (tensors no operation made)
    /// keep theirs. Call it when a step is done with its graph (after reading the loss): none of the graph's results may
    /// be used afterwards.
    /// </summary>
    public void ReleaseGraph(ComputeContext compute)
    {
        ArgumentNullException.ThrowIfNull(compute);
        var seen = new HashSet<Tensor<T>>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<Tensor<T>>();
        stack.Push(this);
        while (stack.Count > 0)
        {
            var t = stack.Pop();
            if (t._parents.Length == 0 || !seen.Add(t)) continue;
            compute.Return(t.Data);
            if (t._grad != null) compute.Return(t._grad);
            t._grad = null;
            t._backward = null;
            foreach (var p in t._parents) stack.Push(p);
        }
    }

    /// <summary>A new array for an operation's result: recycled by <paramref name="compute"/> when given.</summary>
    private static T[] NewData(ComputeContext? compute, long length, bool zeroed = true) =>
        compute?.Rent<T>(checked((int)length), zeroed) ?? new T[length];

    /// <summary>Creates the result of an operation: it requires a gradient when any parent does.</summary>
    internal static Tensor<T> Result(int[] shape, T[] data, params Tensor<T>[] parents)
    {
        bool requiresGrad = false;
        foreach (var p in parents) requiresGrad |= p.RequiresGrad;
        return new Tensor<T>(shape, data, requiresGrad, requiresGrad ? parents : []);
    }

    /// <summary>Sets the closure that adds this tensor's gradient into its parents' gradients (only kept when a gradient is wanted).</summary>
    internal void SetBackward(Action backward)
    {
        if (RequiresGrad) _backward = backward;
    }

    /// <summary>Runs <paramref name="body"/>(start, end) over [0, <paramref name="count"/>): in one call here without a
    /// context, split over the context's threads with one.</summary>
    private static void Split(ComputeContext? compute, int count, long work, Action<int, int> body)
    {
        if (compute is null) body(0, count);
        else compute.For(count, work, body);
    }

    /// <summary>True when <paramref name="operation"/> should take its float fast path: a context was given (which needs
    /// float tensors).</summary>
    private static bool FastPath(ComputeContext? compute, string operation)
    {
        if (compute is null) return false;
        if (typeof(T) != typeof(float))
            throw new NotSupportedException($"{operation}: the fast path of a ComputeContext runs float tensors, not {typeof(T).Name}");
        return true;
    }

    private static Tensor<float> AsFloat(Tensor<T> tensor) => (Tensor<float>)(object)tensor;

    private static Tensor<T> FromFloat(Tensor<float> tensor) => (Tensor<T>)(object)tensor;

    /// <inheritdoc/>
    public override string ToString() => $"Tensor<{typeof(T).Name}>{ShapeMismatchException.Format(Shape)}";
}
