using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>Matrix-vector products: <c>y[r] = dot(W[r, :], x)</c> for every row r of a weight matrix.</summary>
/// <remarks>
/// For quantized weights x is first quantized to 8-bit blocks (see <see cref="ActivationBlocks"/>), then each row is an
/// integer dot product per block scaled by the two block scales, as llama.cpp's vec_dot_*_q8_* kernels do. The result
/// therefore differs from dot(dequantized row, x) by x's 8-bit rounding (relative error about 2^-8 per value).
/// F32, F16 and BF16 weights are multiplied with float x directly.
/// </remarks>
public static class MatVec
{
    /// <summary>y = W x, with W (rows x cols) in any supported type, x of length cols, y of length rows.</summary>
    public static void Multiply(in TensorView w, ReadOnlySpan<float> x, Span<float> y) =>
        Multiply(w, x, y, null, KernelOptions.Best);

    /// <summary>y = W x with the rows split across <paramref name="pool"/>'s threads and the caller.</summary>
    public static void Multiply(in TensorView w, ReadOnlySpan<float> x, Span<float> y, WorkerPool pool) =>
        Multiply(w, x, y, pool, KernelOptions.Best);

    /// <summary>True when <see cref="Multiply(in TensorView, ReadOnlySpan{float}, Span{float})"/> accepts weights of <paramref name="type"/>.</summary>
    public static bool IsSupported(GgmlType type) => Quantize.IsSupported(type);

    /// <summary>y = W x on the chosen <paramref name="kernels"/> (the overloads without them use
    /// <see cref="KernelOptions.Best"/>), the rows split across <paramref name="pool"/> when there is one.</summary>
    public static unsafe void Multiply(in TensorView w, ReadOnlySpan<float> x, Span<float> y, WorkerPool? pool, KernelOptions kernels)
    {
        if (x.Length < w.Cols)
            throw new ArgumentException($"matvec shapes: W is {w.Rows}x{w.Cols}, x has {x.Length}, y has {y.Length}");
        fixed (float* px = x)
            Multiply(w, ProductInput.Scratch.Load(px, 1, w.Cols), y, pool, kernels);
    }

    /// <summary>y = W x for the one vector of <paramref name="input"/>, quantized by this product unless an earlier
    /// product of the same input already did.</summary>
    internal static unsafe void Multiply(in TensorView w, ProductInput input, Span<float> y, WorkerPool? pool, KernelOptions kernels)
    {
        if (input.Count != 1 || input.Cols != w.Cols || y.Length < w.Rows)
            throw new ArgumentException($"matvec shapes: W is {w.Rows}x{w.Cols}, X is {input.Count}x{input.Cols}, y has {y.Length}");
        if (!IsSupported(w.Type))
            throw new NotSupportedException($"matrix-vector products with {w.Type} weights are not supported");
        if (PackedRows.Used(w, kernels))
        {
            MatMul.Multiply(w, input, y, pool, kernels);
            return;
        }

        KernelPath path = kernels.Path;
        int blockSize = GgmlTypeInfo.BlockSize(w.Type);
        ActivationBlocks? activations = blockSize is 32 or 256 ? input.Blocks(blockSize, pool, avx2: path >= KernelPath.Vector256)[0] : null;
        bool panels = HalfPanels.Used(w, kernels);
        fixed (float* py = y)
        {
            var job = new MatVecJob
            {
                Type = w.Type, Path = path, Weights = panels ? w.Packed : w.Data, RowBytes = w.RowBytes, Cols = w.Cols,
                X = input.X, Y = py, Activations = activations,
                Wide = kernels.PackedWidth == 512 && Avx512F.IsSupported,
                Panels = panels, Rows = w.Rows,
            };
            // F16 rows read x scaled for the halves' widening, made once here rather than in every thread's share; a
            // matrix known to be finite runs the kernel that does not watch for infinities and NaNs, and the first
            // product of one not known yet finds out.
            if (job.UsesF16Rows)
            {
                job.ScaledX = FloatDots.ScaledForHalves(input.X, w.Cols);
                (job.Halves, job.KnownFinite) = (w.Halves, panels || w.Halves?.AllFinite == true); // panels hold finite halves only
            }
            // Splitting pays only when each thread gets enough bytes to amortise waking it (a few microseconds).
            if (pool != null && w.ByteCount >= 256 * 1024)
                pool.Run(job, w.Rows);
            else
                job.Execute(0, w.Rows);
            if (job.UsesF16Rows && !job.KnownFinite) w.Halves?.Checked();
        }
    }

    /// <summary>Dot product of two equal-length float spans.</summary>
    public static unsafe float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int n = Math.Min(a.Length, b.Length);
        fixed (float* pa = a) fixed (float* pb = b)
            return FloatDots.Dot(GgmlType.F32, KernelOptions.BestPath, (byte*)pa, pb, n);
    }
}
