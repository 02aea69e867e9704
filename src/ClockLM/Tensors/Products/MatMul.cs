using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Matrix-matrix products: <c>Y[t, r] = dot(W[r, :], X[t, :])</c> for every row r of a weight matrix and every one of
/// <c>count</c> activation vectors t (the tokens of a prompt chunk, or one token of each of several sequences).
/// </summary>
/// <remarks>
/// The weights are read once for all the vectors instead of once per vector: rows are taken a few at a time and
/// multiplied with a group of vectors while both sit in the first-level cache, and the tile kernels share the work that
/// depends only on the weights (unpacking 4-bit codes, widening block scales and half-precision values) across the
/// vectors of a group. Activations are quantized to 8-bit blocks once per input (<see cref="ProductInput"/>), one set
/// of blocks per vector, however many products read it.
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
        Multiply(w, x, y, count, null, KernelOptions.Best);

    /// <summary>Y = X Wᵀ with the rows split across <paramref name="pool"/>'s threads and the caller.</summary>
    public static void Multiply(in TensorView w, ReadOnlySpan<float> x, Span<float> y, int count, WorkerPool pool) =>
        Multiply(w, x, y, count, pool, KernelOptions.Best);

    /// <summary>Y = X Wᵀ on the chosen <paramref name="kernels"/>, the rows split across <paramref name="pool"/>'s
    /// threads and the caller when there is one.</summary>
    public static unsafe void Multiply(in TensorView w, ReadOnlySpan<float> x, Span<float> y, int count, WorkerPool? pool, KernelOptions kernels)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (x.Length < (long)count * w.Cols)
            throw new ArgumentException($"matmul shapes: W is {w.Rows}x{w.Cols} and {count} vectors, X has {x.Length} values, Y has {y.Length}");
        fixed (float* px = x)
            Multiply(w, ProductInput.Scratch.Load(px, count, w.Cols), y, pool, kernels);
    }

    /// <summary>
    /// Y = X Wᵀ for the vectors of <paramref name="input"/> on the chosen <paramref name="kernels"/>: the 8-bit forms of
    /// X it already holds (from an earlier product of the same input, such as q before k and v) are used, the missing
    /// ones made and kept in it.
    /// </summary>
    internal static unsafe void Multiply(in TensorView w, ProductInput input, Span<float> y, WorkerPool? pool, KernelOptions kernels)
    {
        int count = input.Count;
        if (input.Cols != w.Cols || y.Length < (long)count * w.Rows)
            throw new ArgumentException($"matmul shapes: W is {w.Rows}x{w.Cols}, X is {count}x{input.Cols}, Y has {y.Length} values");
        if (!MatVec.IsSupported(w.Type))
            throw new NotSupportedException($"matrix products with {w.Type} weights are not supported");
        if (count == 0) return;
        bool packed = PackedRows.Used(w, kernels);
        if (count == 1 && !packed)
        {
            MatVec.Multiply(w, input, y, pool, kernels);
            return;
        }
        if (count > MaxVectors)
        {
            // The kernels keep per-vector pointers on the stack: products of more vectors run in slices.
            for (int t = 0, slice = 0; t < count; t += MaxVectors, slice++)
            {
                int n = Math.Min(MaxVectors, count - t);
                Multiply(w, input.Slice(slice, t, n), y.Slice(t * w.Rows, n * w.Rows), pool, kernels);
            }
            return;
        }

        KernelPath path = kernels.Path;
        int blockSize = GgmlTypeInfo.BlockSize(w.Type);
        ActivationBlocks[]? activations = blockSize is 32 or 256 ? input.Blocks(blockSize, pool, avx2: path >= KernelPath.Vector256) : null;
        fixed (float* py = y)
        {
            if (packed)
            {
                PackedRows.Multiply(w, input, py, pool, kernels);
                return;
            }
            bool panels = HalfPanels.Used(w, kernels);
            var job = new MatMulJob
            {
                Type = w.Type, Path = path, Weights = panels ? w.Packed : w.Data, RowBytes = w.RowBytes, Cols = w.Cols, Rows = w.Rows,
                Count = count, X = input.X, Y = py, Activations = activations,
                Wide = kernels.PackedWidth == 512 && Avx512F.IsSupported, Panels = panels,
            };
            // The same threshold as MatVec, on the work of all vectors together.
            if (pool != null && w.ByteCount * count >= 256 * 1024)
                pool.Run(job, w.Rows);
            else
                job.Execute(0, w.Rows);
        }
    }
}

