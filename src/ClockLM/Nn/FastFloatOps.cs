namespace ClockLM.Nn;

/// <summary>
/// The float fast path of the operations whose plain code would be slow: the linear map by <see cref="Gemm"/>
/// (one product over all batch·seqLen rows for the forward pass and each of the two gradients), attention by
/// <see cref="FusedAttention"/>, and SwiGLU and cross-entropy by the eight-lane <see cref="FloatRows"/> kernels. Each
/// computes the same function as the plain operation in <c>Tensor.Transformer.cs</c> (tests compare them and check
/// the gradients), with sums in other orders, so the two agree to rounding, not bit for bit. Every sum here has one
/// fixed order whatever the number of threads.
/// </summary>
internal static unsafe class FastFloatOps
{
    /// <summary>y = x·Wᵀ; dx += dy·W; dW += dyᵀ·x.</summary>
    public static Tensor<float> Linear(Tensor<float> x, Tensor<float> weight, ComputeContext compute)
    {
        int n = x.Shape[0], inDim = x.Shape[1], outDim = weight.Shape[0];
        var y = compute.Rent<float>(n * outDim, zeroed: false);
        fixed (float* px = x.Data, pw = weight.Data, py = y)
            Gemm.Multiply(StridedMatrix.RowMajor(px, inDim), StridedMatrix.Transposed(pw, inDim), py, outDim, n, outDim, inDim, accumulate: false, compute.Pool);
        var output = Tensor<float>.Result([n, outDim], y, x, weight);
        output.SetBackward(() =>
        {
            fixed (float* pg = output.Grad, px = x.Data, pw = weight.Data)
            {
                if (x.RequiresGrad)
                    fixed (float* pdx = x.EnsureGrad(compute))
                        Gemm.Multiply(StridedMatrix.RowMajor(pg, outDim), StridedMatrix.RowMajor(pw, inDim), pdx, inDim, n, inDim, outDim, accumulate: true, compute.Pool);
                if (weight.RequiresGrad)
                    fixed (float* pdw = weight.EnsureGrad(compute))
                        Gemm.Multiply(StridedMatrix.Transposed(pg, outDim), StridedMatrix.RowMajor(px, inDim), pdw, inDim, outDim, inDim, n, accumulate: true, compute.Pool);
            }
        });
        return output;
    }

    /// <summary>Causal grouped-query attention; see <see cref="FusedAttention"/>.</summary>
    public static Tensor<float> CausalSelfAttention(Tensor<float> q, Tensor<float> k, Tensor<float> v, FusedAttention.Shape shape, ComputeContext compute)
    {
        int n = shape.Batch * shape.SeqLen;
        var y = compute.Rent<float>(n * shape.Dim, zeroed: false);
        var logSumExp = GC.AllocateUninitializedArray<float>(n * shape.Heads);
        FusedAttention.Forward(q.Data, k.Data, v.Data, y, logSumExp, shape, compute);
        var output = Tensor<float>.Result([n, shape.Dim], y, q, k, v);
        output.SetBackward(() =>
        {
            var dq = q.RequiresGrad ? q.EnsureGrad(compute) : new float[q.Length];
            var dk = k.RequiresGrad ? k.EnsureGrad(compute) : new float[k.Length];
            var dv = v.RequiresGrad ? v.EnsureGrad(compute) : new float[v.Length];
            FusedAttention.Backward(q.Data, k.Data, v.Data, y, output.Grad!, logSumExp, dq, dk, dv, shape, compute);
        });
        return output;
    }

    /// <summary>silu(gate) ⊙ up, rows shared out over the threads.</summary>
    public static Tensor<float> SwiGlu(Tensor<float> gate, Tensor<float> up, ComputeContext compute)
    {
        int cols = gate.Columns, rows = gate.Rows;
        var y = compute.Rent<float>(gate.Length, zeroed: false);
        compute.For(rows, (long)rows * cols * 16, (start, end) =>
        {
            int o = start * cols, count = (end - start) * cols;
            FloatRows.SwiGlu(gate.Data.AsSpan(o, count), up.Data.AsSpan(o, count), y.AsSpan(o, count));
        });
        var output = Tensor<float>.Result(gate.Shape, y, gate, up);
        output.SetBackward(() =>
        {
            var g = output.Grad!;
            var dGate = gate.RequiresGrad ? gate.EnsureGrad(compute) : new float[gate.Length];
            var dUp = up.RequiresGrad ? up.EnsureGrad(compute) : new float[up.Length];
            compute.For(rows, (long)rows * cols * 24, (start, end) =>
            {
                int o = start * cols, count = (end - start) * cols;
                FloatRows.SwiGluBackward(gate.Data.AsSpan(o, count), up.Data.AsSpan(o, count), g.AsSpan(o, count),
                    dGate.AsSpan(o, count), dUp.AsSpan(o, count));
            });
        });
        return output;
    }

    /// <summary>
    /// Mean cross-entropy of logits (n × vocab) against <paramref name="targets"/>. Only each row's log-sum-exp L is
    /// kept for the backward pass, which recomputes softmax = e^(logit − L). The loss sums the rows' losses in row
    /// order, in double.
    /// </summary>
    public static Tensor<float> CrossEntropy(Tensor<float> logits, int[] targets, ComputeContext compute)
    {
        int rows = logits.Rows, vocab = logits.Columns;
        for (int r = 0; r < rows; r++)
            if ((uint)targets[r] >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(targets), targets[r], $"target at index {r} is outside the vocabulary (0..{vocab - 1})");
        var logSumExp = new float[rows];
        compute.For(rows, (long)rows * vocab * 16, (start, end) =>
        {
            for (int r = start; r < end; r++)
                logSumExp[r] = FloatRows.LogSumExp(logits.Data.AsSpan(r * vocab, vocab), 1f);
        });
        double total = 0;
        for (int r = 0; r < rows; r++) total += (double)logSumExp[r] - logits.Data[r * vocab + targets[r]];
        var output = Tensor<float>.Result([], [(float)(total / rows)], logits);
        output.SetBackward(() =>
        {
            float g = output.Grad![0] / rows;
            var gl = logits.EnsureGrad(compute);
            compute.For(rows, (long)rows * vocab * 16, (start, end) =>
            {
                Span<float> softmax = vocab <= 4096 ? stackalloc float[vocab] : new float[vocab];
                for (int r = start; r < end; r++)
                {
                    var row = gl.AsSpan(r * vocab, vocab);
                    FloatRows.ExpShifted(logits.Data.AsSpan(r * vocab, vocab), 1f, logSumExp[r], softmax);
                    // d/dlogit of −log softmax[target] = softmax − onehot
                    MatMulKernel.Axpy<float>(row, g, softmax);
                    row[targets[r]] -= g;
                }
            });
        });
        return output;
    }
}
