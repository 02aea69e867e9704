namespace ClockLM.Tensors;

/// <summary>
/// Matrix-matrix products: <c>Y[t, r] = dot(W[r, :], X[t, :])</c> for every row r of a weight matrix and every one of
/// <c>count</c> activation vectors t (the tokens of a prompt chunk, or one token of each of several sequences).
/// </summary>
/// <remarks>
/// The weights are read once for all the vectors instead of once per vector: rows are taken a few at a time and
/// multiplied with a group of vectors while both sit in the first-level cache, and the tile kernels share the work that
/// depends only on the weights (unpacking 4-bit codes, widening block scales and half-precision values) across the
/// vectors of a group. Activations are quantized to 8-bit blocks once per product, one set of blocks per vector.
/// Every (row, vector) result is the same sequence of float operations as <see cref="MatVec"/> on that vector, so
/// the results are bit-identical to calling <see cref="MatVec.Multiply(in TensorView, ReadOnlySpan{float}, Span{float})"/>
/// once per vector.
/// </remarks>
public static class MatMul
{
    /// <summary>Vectors one kernel pass takes; larger products run in slices of this many.</summary>
    internal const int MaxVectors = 256;

    /// <summary>Y = X Wᵀ: X holds <paramref name="count"/> vectors of W.Cols values one after another, Y receives
    /// <paramref name="count"/> vectors of W.Rows values.</summary>
    public static void Multiply(in TensorView w, ReadOnlySpan<float> x, Span<float> y, int count) =>
        Multiply(w, x, y, count, null, KernelPaths.Best);

    /// <summary>Y = X Wᵀ with the rows split across <paramref name="pool"/>'s threads and the caller.</summary>
    public static void Multiply(in TensorView w, ReadOnlySpan<float> x, Span<float> y, int count, WorkerPool pool) =>
        Multiply(w, x, y, count, pool, KernelPaths.Best);

    /// <summary>Y = X Wᵀ on a chosen kernel path (tests compare it with <see cref="MatVec"/> on the same path).</summary>
    internal static void Multiply(in TensorView w, ReadOnlySpan<float> x, Span<float> y, int count, WorkerPool? pool, KernelPath path) =>
        Multiply(w, x, y, count, pool, path, sameInput: false);

    /// <summary>
    /// Y = X Wᵀ where X is the same as in the calling thread's previous product (q, k and v read one normalized input,
    /// gate and up another): the 8-bit blocks that product quantized are used again when their block size, vector count
    /// and length match, and X is quantized otherwise. The caller must not have changed X since.
    /// </summary>
    internal static void MultiplySameInput(in TensorView w, ReadOnlySpan<float> x, Span<float> y, int count, WorkerPool? pool) =>
        Multiply(w, x, y, count, pool, KernelPaths.Best, sameInput: true);

    /// <summary>What the calling thread's <see cref="ActivationSets"/> hold: the block size, vector count and length
    /// of the last product's quantized X (block size 0: nothing reusable), and how the laid-out activations of packed
    /// products hold them too.</summary>
    [ThreadStatic] private static (int BlockSize, int Count, int Cols, ActivationLayout Layout) _quantized;

    private static unsafe void Multiply(in TensorView w, ReadOnlySpan<float> x, Span<float> y, int count, WorkerPool? pool, KernelPath path, bool sameInput)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (x.Length < (long)count * w.Cols || y.Length < (long)count * w.Rows)
            throw new ArgumentException($"matmul shapes: W is {w.Rows}x{w.Cols} and {count} vectors, X has {x.Length} values, Y has {y.Length}");
        if (!MatVec.IsSupported(w.Type))
            throw new NotSupportedException($"matrix products with {w.Type} weights are not supported");
        if (!KernelPaths.CanRun(path))
            throw new PlatformNotSupportedException($"kernel path {path} needs AVX2");
        if (count == 0) return;
        bool packed = PackedRows.Used(w, path);
        if (count == 1 && !packed)
        {
            MatVec.Multiply(w, x, y, pool, path);
            return;
        }
        if (count > MaxVectors)
        {
            // The kernels keep per-vector pointers on the stack: products of more vectors run in slices.
            for (int t = 0; t < count; t += MaxVectors)
            {
                int n = Math.Min(MaxVectors, count - t);
                Multiply(w, x.Slice(t * w.Cols, n * w.Cols), y.Slice(t * w.Rows, n * w.Rows), n, pool, path);
            }
            return;
        }

        ActivationBlocks[]? activations = null;
        int blockSize = GgmlTypeInfo.BlockSize(w.Type);
        bool reuse = false;
        if (blockSize is 32 or 256)
        {
            activations = ActivationSets.ForThread(count);
            reuse = sameInput && _quantized.BlockSize == blockSize && _quantized.Count == count && _quantized.Cols == w.Cols;
            if (!reuse)
            {
                _quantized = default;
                fixed (float* px = x)
                {
                    var quantize = new QuantizeJob { X = px, Cols = w.Cols, BlockSize = blockSize, Avx2 = path >= KernelPath.Vector256, Activations = activations };
                    // Each vector is quantized on its own: many vectors are shared out like rows.
                    if (pool != null && count >= 8) pool.Run(quantize, count);
                    else quantize.Execute(0, count);
                }
                _quantized = (blockSize, count, w.Cols, ActivationLayout.None);
            }
        }
        else _quantized = default;

        fixed (float* px = x)
        fixed (float* py = y)
        {
            if (packed)
            {
                var layout = PackedRows.LayoutAfter(w.Type, count);
                PackedRows.Multiply(w, activations!, py, count, pool, laidOut: reuse && layout != ActivationLayout.None && _quantized.Layout == layout);
                _quantized.Layout = layout;
                return;
            }
            var job = new MatMulJob
            {
                Type = w.Type, Path = path, Weights = w.Data, RowBytes = w.RowBytes, Cols = w.Cols, Rows = w.Rows,
                Count = count, X = px, Y = py, Activations = activations,
            };
            // The same threshold as MatVec, on the work of all vectors together.
            if (pool != null && w.ByteCount * count >= 256 * 1024)
                pool.Run(job, w.Rows);
            else
                job.Execute(0, w.Rows);
        }
    }
}

/// <summary>Vectors [start, end) of X quantized to 8-bit blocks of 32 or 256 values.</summary>
internal unsafe struct QuantizeJob : IRowRangeJob
{
    public float* X;
    public int Cols, BlockSize;
    public bool Avx2;
    public ActivationBlocks[] Activations;

    public readonly void Execute(int start, int end)
    {
        for (int t = start; t < end; t++)
        {
            var xt = new ReadOnlySpan<float>(X + (long)t * Cols, Cols);
            if (BlockSize == 32) Activations[t].Quantize32(xt, Avx2);
            else Activations[t].Quantize256(xt, Avx2);
        }
    }
}

/// <summary>Per-thread sets of activation blocks, one per vector of a product, reused across products.</summary>
internal static class ActivationSets
{
    [ThreadStatic] private static ActivationBlocks[]? _sets;

    public static ActivationBlocks[] ForThread(int count)
    {
        var sets = _sets ?? [];
        if (sets.Length < count)
        {
            int old = sets.Length;
            Array.Resize(ref sets, Math.Max(count, 2 * old));
            for (int i = old; i < sets.Length; i++) sets[i] = new ActivationBlocks();
            _sets = sets;
        }
        return sets;
    }
}
