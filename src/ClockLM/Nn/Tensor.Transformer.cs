using ClockLM.Models;
using System.Numerics;

namespace ClockLM.Nn;

// The operations of a Llama-style transformer, on activations laid out as a matrix of token rows:
// row n = b·seqLen + t holds position t of sequence b in the batch. They follow ClockLM's inference
// conventions exactly (Models/Transformer.cs), so a model trained here runs there with the same logits.
public sealed partial class Tensor<T>
{
    /// <summary>
    /// Embedding lookup: row i of the result is row <c>ids[i]</c> of <paramref name="table"/> (vocab × dim).
    /// The gradient of a table row is the sum of the gradients of the rows that read it (added in row order).
    /// </summary>
    public static Tensor<T> Embedding(Tensor<T> table, int[] ids, ComputeContext? compute = null)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (table.Rank != 2)
            throw new ShapeMismatchException("Embedding", table.Shape, [ids.Length], "expected a (vocab × dim) table");
        int vocab = table.Shape[0], dim = table.Shape[1];
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(ids), ids[i], $"token id at index {i} is outside the table (0..{vocab - 1})");
        var data = NewData(compute, (long)ids.Length * dim, zeroed: false);
        Split(compute, ids.Length, (long)ids.Length * dim, (start, end) =>
        {
            for (int i = start; i < end; i++)
                table.Data.AsSpan(ids[i] * dim, dim).CopyTo(data.AsSpan(i * dim, dim));
        });
        var output = Result([ids.Length, dim], data, table);
        output.SetBackward(() =>
        {
            var g = output._grad!;
            var gt = table.EnsureGrad(compute);
            for (int i = 0; i < ids.Length; i++)
                MatMulKernel.Axpy<T>(gt.AsSpan(ids[i] * dim, dim), T.One, g.AsSpan(i * dim, dim));
        });
        return output;
    }

    /// <summary>
    /// Linear map by a weight stored (out × in) row-major, as GGUF stores matrices: this (n × in) → (n × out),
    /// y = x·Wᵀ, i.e. y[i, o] = Σ_j x[i, j]·W[o, j]. Given a <paramref name="compute"/> context (float only), the
    /// product and both gradients are one packed matrix product each over all n rows.
    /// </summary>
    public Tensor<T> Linear(Tensor<T> weight, ComputeContext? compute = null)
    {
        if (Rank != 2 || weight.Rank != 2 || Shape[1] != weight.Shape[1])
            throw new ShapeMismatchException("Linear", Shape, weight.Shape, "expected (n × in) by a weight (out × in)");
        if (FastPath(compute, "Linear")) return FromFloat(FastFloatOps.Linear(AsFloat(this), AsFloat(weight), compute!));
        int n = Shape[0], inDim = Shape[1], outDim = weight.Shape[0];
        var x = this;
        var y = new T[n * outDim];
        // y[i, o] = x[i,:]·W[o,:] is the dA product of a matmul whose B is Wᵀ.
        MatMulKernel.MatMulGradA(x.Data, weight.Data, y, n, outDim, inDim);
        var output = Result([n, outDim], y, x, weight);
        output.SetBackward(() =>
        {
            var g = output._grad!;
            if (x.RequiresGrad)
            {
                // dx = dy·W (n × out)·(out × in)
                var dx = new T[n * inDim];
                MatMulKernel.MatMul(g, weight.Data, dx, n, outDim, inDim);
                AddInto(x.EnsureGrad(), dx);
            }
            // dW = dyᵀ·x (out × n)·(n × in)
            if (weight.RequiresGrad) MatMulKernel.MatMulGradB(g, x.Data, weight.EnsureGrad(), n, outDim, inDim);
        });
        return output;
    }

    /// <summary>
    /// RMSNorm of every row: y = w ⊙ x / √(mean(x²) + ε), with <paramref name="weight"/> of shape [dim]. A
    /// <paramref name="compute"/> context shares the rows (and, for dw, blocks of columns) out over its threads; every
    /// value is computed as without one, bit for bit.
    /// </summary>
    public Tensor<T> RmsNorm(Tensor<T> weight, double epsilon, ComputeContext? compute = null)
    {
        int rows = Rows, dim = Columns;
        if (weight.Length != dim)
            throw new ShapeMismatchException("RmsNorm", Shape, weight.Shape, $"expected a weight of shape [{dim}]");
        var x = this;
        T eps = T.CreateChecked(epsilon), n = T.CreateChecked(dim);
        var inv = new T[rows];
        var y = NewData(compute, Length, zeroed: false);
        Split(compute, rows, (long)rows * dim, (start, end) =>
        {
            for (int r = start; r < end; r++)
            {
                var xr = x.Data.AsSpan(r * dim, dim);
                inv[r] = T.One / T.Sqrt(MatMulKernel.Dot<T>(xr, xr) / n + eps);
                for (int j = 0; j < dim; j++) y[r * dim + j] = weight.Data[j] * (inv[r] * xr[j]);
            }
        });
        var output = Result(Shape, y, x, weight);
        output.SetBackward(() =>
        {
            var g = output._grad!;
            if (weight.RequiresGrad)
            {
                // dw_j = Σ_r g[r, j]·x[r, j]·s_r, the rows in order; the columns go in blocks of 64 to the threads.
                var gw = weight.EnsureGrad(compute);
                Split(compute, (dim + 63) / 64, (long)rows * dim, (start, end) =>
                {
                    int j0 = start * 64, j1 = Math.Min(dim, end * 64);
                    for (int r = 0; r < rows; r++)
                    {
                        int o = r * dim;
                        T s = inv[r];
                        for (int j = j0; j < j1; j++) gw[j] += g[o + j] * x.Data[o + j] * s;
                    }
                });
            }
            if (!x.RequiresGrad) return;
            var gx = x.EnsureGrad(compute);
            Split(compute, rows, 2L * rows * dim, (start, end) =>
            {
                for (int r = start; r < end; r++)
                {
                    int o = r * dim;
                    T s = inv[r];
                    // With u = w ⊙ g:  dx = s·u − s³/dim · x · (u·x)
                    T ux = T.Zero;
                    for (int j = 0; j < dim; j++) ux += weight.Data[j] * g[o + j] * x.Data[o + j];
                    T c = s * s * s * ux / n;
                    for (int j = 0; j < dim; j++) gx[o + j] += s * weight.Data[j] * g[o + j] - c * x.Data[o + j];
                }
            });
        });
        return output;
    }

    /// <summary>
    /// Rotary position embedding: in each head of <paramref name="headSize"/> values, the pair (x[2i], x[2i+1]) — or
    /// (x[i], x[i + headSize/2]) with <see cref="RopeStyle.Halves"/> (Qwen, llama.cpp's NEOX) — is rotated by the angle
    /// t·base^(−2i/headSize), where t = row mod <paramref name="seqLen"/> is the position. The angles are computed in
    /// float exactly as the inference engine computes them. A <paramref name="compute"/> context shares the rows out over
    /// its threads (same values).
    /// </summary>
    public Tensor<T> Rope(int headSize, int seqLen, float ropeBase, ComputeContext? compute = null, RopeStyle style = RopeStyle.Adjacent)
    {
        int rows = Rows, cols = Columns;
        if (headSize <= 0 || headSize % 2 != 0 || cols % headSize != 0)
            throw new ArgumentException($"Rope: head size {headSize} must be even and divide the row width {cols}", nameof(headSize));
        if (seqLen <= 0 || rows % seqLen != 0)
            throw new ArgumentException($"Rope: {rows} rows are not whole sequences of {seqLen} positions", nameof(seqLen));
        if (style is not (RopeStyle.Adjacent or RopeStyle.Halves))
            throw new ArgumentException($"Rope: style {style} rotates nothing", nameof(style));
        var (cos, sin) = RopeTables(headSize, seqLen, ropeBase);
        var x = this;
        bool halves = style == RopeStyle.Halves;
        var y = NewData(compute, Length, zeroed: false);
        Split(compute, rows, 4L * rows * cols, (start, end) => Rotate(x.Data, y, cos, sin, start, end, cols, seqLen, headSize, halves, T.One, add: false));
        var output = Result(Shape, y, x);
        output.SetBackward(() =>
        {
            // The transpose of a rotation is the rotation by the opposite angle.
            var g = output._grad!;
            var gx = x.EnsureGrad(compute);
            Split(compute, rows, 5L * rows * cols, (start, end) => Rotate(g, gx, cos, sin, start, end, cols, seqLen, headSize, halves, -T.One, add: true));
        });
        return output;

        // Rotates rows [first, end) of source into target (added to it when add). Pair j of a row is elements (2j, 2j+1),
        // or with halves (h·headSize + i, h·headSize + i + headSize/2) for head h = j / (headSize/2), i = j mod (headSize/2).
        static void Rotate(T[] source, T[] target, T[] cos, T[] sin, int first, int end, int cols, int seqLen, int headSize, bool halves, T sign, bool add)
        {
            int half = headSize / 2;
            for (int r = first; r < end; r++)
            {
                int t = r % seqLen;
                for (int j = 0; j < cols / 2; j++)
                {
                    int i = j % half;
                    int c0 = halves ? (j / half) * headSize + i : 2 * j, c1 = halves ? c0 + half : c0 + 1;
                    T cs = cos[t * half + i], sn = sign * sin[t * half + i];
                    T a = source[r * cols + c0], b = source[r * cols + c1];
                    T ra = a * cs - b * sn, rb = a * sn + b * cs;
                    if (add)
                    {
                        target[r * cols + c0] += ra;
                        target[r * cols + c1] += rb;
                    }
                    else
                    {
                        target[r * cols + c0] = ra;
                        target[r * cols + c1] = rb;
                    }
                }
            }
        }
    }

    private static (T[] Cos, T[] Sin) RopeTables(int headSize, int seqLen, float ropeBase)
    {
        int half = headSize / 2;
        var cos = new T[seqLen * half];
        var sin = new T[seqLen * half];
        for (int t = 0; t < seqLen; t++)
            for (int i = 0; i < half; i++)
            {
                float frequency = 1.0f / MathF.Pow(ropeBase, 2 * i / (float)headSize);
                float angle = t * frequency;
                cos[t * half + i] = T.CreateChecked(MathF.Cos(angle));
                sin[t * half + i] = T.CreateChecked(MathF.Sin(angle));
            }
        return (cos, sin);
    }

    /// <summary>
    /// Causal multi-head self-attention with grouped-query heads. <paramref name="q"/> is (batch·seqLen × heads·headSize),
    /// <paramref name="k"/> and <paramref name="v"/> are (batch·seqLen × kvHeads·headSize); query head h reads key/value
    /// head h / (heads / kvHeads). Position t attends to positions 0..t of its own sequence with weights
    /// softmax(q·k / √headSize). Returns (batch·seqLen × heads·headSize), the heads side by side. Given a
    /// <paramref name="compute"/> context (float only) it runs fused: see <see cref="FusedAttention"/>.
    /// </summary>
    public static Tensor<T> CausalSelfAttention(Tensor<T> q, Tensor<T> k, Tensor<T> v, int batch, int seqLen, int heads, int kvHeads,
        ComputeContext? compute = null)
    {
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0)
            throw new ArgumentException($"attention: {heads} heads are not a multiple of {kvHeads} key/value heads", nameof(heads));
        int n = batch * seqLen;
        int dim = q.Columns, headSize = dim / heads, kvDim = kvHeads * headSize;
        if (q.Rank != 2 || q.Rows != n || dim % heads != 0)
            throw new ShapeMismatchException("CausalSelfAttention", q.Shape, [n, dim], $"expected queries ({n} × heads·headSize) with {heads} heads");
        if (k.Rank != 2 || k.Rows != n || k.Columns != kvDim)
            throw new ShapeMismatchException("CausalSelfAttention", k.Shape, [n, kvDim], "expected keys (batch·seqLen × kvHeads·headSize)");
        if (v.Rank != 2 || v.Rows != n || v.Columns != kvDim)
            throw new ShapeMismatchException("CausalSelfAttention", v.Shape, [n, kvDim], "expected values (batch·seqLen × kvHeads·headSize)");

        if (FastPath(compute, "CausalSelfAttention"))
            return FromFloat(FastFloatOps.CausalSelfAttention(AsFloat(q), AsFloat(k), AsFloat(v),
                new FusedAttention.Shape(batch, seqLen, heads, kvHeads, headSize), compute!));

        int group = heads / kvHeads;
        T scale = T.One / T.Sqrt(T.CreateChecked(headSize));
        // probabilities[b, h, t, s] for s ≤ t, kept for the backward pass
        var probabilities = new T[(long)batch * heads * seqLen * seqLen];
        var y = new T[n * dim];
        // One work item per (sequence, key/value head): the query heads of a group share its keys and values,
        // so in the backward pass only this item writes their gradients.
        Parallel.For(0, batch * kvHeads, item =>
        {
            int b = item / kvHeads, kvh = item % kvHeads;
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
            {
                long pBase = ((long)b * heads + h) * seqLen * seqLen;
                for (int t = 0; t < seqLen; t++)
                {
                    var p = probabilities.AsSpan((int)(pBase + (long)t * seqLen), t + 1);
                    var qt = q.Data.AsSpan((b * seqLen + t) * dim + h * headSize, headSize);
                    for (int s = 0; s <= t; s++)
                        p[s] = MatMulKernel.Dot<T>(qt, k.Data.AsSpan((b * seqLen + s) * kvDim + kvh * headSize, headSize)) * scale;
                    Activations.SoftmaxRow<T>(p, p);
                    var yt = y.AsSpan((b * seqLen + t) * dim + h * headSize, headSize);
                    for (int s = 0; s <= t; s++)
                        MatMulKernel.Axpy<T>(yt, p[s], v.Data.AsSpan((b * seqLen + s) * kvDim + kvh * headSize, headSize));
                }
            }
        });

        var output = Result([n, dim], y, q, k, v);
        output.SetBackward(() =>
        {
            var g = output._grad!;
            var dq = q.RequiresGrad ? q.EnsureGrad() : new T[q.Length];
            var dk = k.RequiresGrad ? k.EnsureGrad() : new T[k.Length];
            var dv = v.RequiresGrad ? v.EnsureGrad() : new T[v.Length];
            Parallel.For(0, batch * kvHeads, item =>
            {
                int b = item / kvHeads, kvh = item % kvHeads;
                var dScores = new T[seqLen];
                for (int h = kvh * group; h < (kvh + 1) * group; h++)
                {
                    long pBase = ((long)b * heads + h) * seqLen * seqLen;
                    for (int t = 0; t < seqLen; t++)
                    {
                        var p = probabilities.AsSpan((int)(pBase + (long)t * seqLen), t + 1);
                        var gt = g.AsSpan((b * seqLen + t) * dim + h * headSize, headSize);
                        // y_t = Σ_s p_s v_s  ⇒  dv_s += p_s·dy_t,  dp_s = dy_t·v_s
                        T dot = T.Zero;
                        for (int s = 0; s <= t; s++)
                        {
                            int kvRow = (b * seqLen + s) * kvDim + kvh * headSize;
                            MatMulKernel.Axpy<T>(dv.AsSpan(kvRow, headSize), p[s], gt);
                            dScores[s] = MatMulKernel.Dot<T>(gt, v.Data.AsSpan(kvRow, headSize));
                            dot += dScores[s] * p[s];
                        }
                        // softmax: ds_s = p_s·(dp_s − Σ p·dp); scores = scale·q·k
                        var qt = q.Data.AsSpan((b * seqLen + t) * dim + h * headSize, headSize);
                        var dqt = dq.AsSpan((b * seqLen + t) * dim + h * headSize, headSize);
                        for (int s = 0; s <= t; s++)
                        {
                            T ds = p[s] * (dScores[s] - dot) * scale;
                            int kvRow = (b * seqLen + s) * kvDim + kvh * headSize;
                            MatMulKernel.Axpy<T>(dqt, ds, k.Data.AsSpan(kvRow, headSize));
                            MatMulKernel.Axpy<T>(dk.AsSpan(kvRow, headSize), ds, qt);
                        }
                    }
                }
            });
        });
        return output;
    }

    /// <summary>SwiGLU gate: silu(this) ⊙ <paramref name="up"/>, where silu(g) = g·σ(g). Given a
    /// <paramref name="compute"/> context (float only), eight lanes at a time on its threads (<see cref="FloatRows.SwiGlu"/>).</summary>
    public Tensor<T> SwiGlu(Tensor<T> up, ComputeContext? compute = null)
    {
        RequireSameShape("SwiGlu", up);
        if (FastPath(compute, "SwiGlu")) return FromFloat(FastFloatOps.SwiGlu(AsFloat(this), AsFloat(up), compute!));
        var gate = this;
        var y = new T[Length];
        for (int i = 0; i < y.Length; i++)
            y[i] = gate.Data[i] * Activations.Sigmoid(gate.Data[i]) * up.Data[i];
        var output = Result(Shape, y, gate, up);
        output.SetBackward(() =>
        {
            var g = output._grad!;
            var gg = gate.RequiresGrad ? gate.EnsureGrad() : null;
            var gu = up.RequiresGrad ? up.EnsureGrad() : null;
            for (int i = 0; i < g.Length; i++)
            {
                T x = gate.Data[i], s = Activations.Sigmoid(x);
                if (gg != null) gg[i] += g[i] * up.Data[i] * s * (T.One + x * (T.One - s));
                if (gu != null) gu[i] += g[i] * x * s;
            }
        });
        return output;
    }

    /// <summary>
    /// Mean cross-entropy of next-token predictions: this holds logits (n × vocab), <paramref name="targets"/> the n
    /// correct ids; the loss is mean_i(−log softmax(logits_i)[targets_i]). Its gradient is (softmax − onehot) / n.
    /// Given a <paramref name="compute"/> context (float only), rows run on its threads with eight-lane exponentials
    /// and only each row's log-sum-exp is kept for the backward pass.
    /// </summary>
    public Tensor<T> CrossEntropy(int[] targets, ComputeContext? compute = null)
    {
        ArgumentNullException.ThrowIfNull(targets);
        int rows = Rows, vocab = Columns;
        if (Rank != 2 || targets.Length != rows)
            throw new ShapeMismatchException("CrossEntropy", Shape, [targets.Length], "expected logits (n × vocab) and n targets");
        if (FastPath(compute, "CrossEntropy")) return FromFloat(FastFloatOps.CrossEntropy(AsFloat(this), targets, compute!));
        var logits = this;
        var probabilities = new T[Length];
        var losses = new T[rows];
        Parallel.For(0, rows, r =>
        {
            if ((uint)targets[r] >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(targets), targets[r], $"target at index {r} is outside the vocabulary (0..{vocab - 1})");
            var p = probabilities.AsSpan(r * vocab, vocab);
            Activations.SoftmaxRow<T>(logits.Data.AsSpan(r * vocab, vocab), p);
            // −log p computed from the logits (log-sum-exp), which stays finite when p underflows
            var row = logits.Data.AsSpan(r * vocab, vocab);
            T max = row[0];
            foreach (T value in row) max = T.Max(max, value);
            T sum = T.Zero;
            foreach (T value in row) sum += T.Exp(value - max);
            losses[r] = max + T.Log(sum) - row[targets[r]];
        });
        T total = T.Zero;
        foreach (T l in losses) total += l;
        T count = T.CreateChecked(rows);
        var output = Result([], [total / count], logits);
        output.SetBackward(() =>
        {
            T g = output._grad![0] / count;
            var gl = logits.EnsureGrad();
            Parallel.For(0, rows, r =>
            {
                int o = r * vocab;
                for (int c = 0; c < vocab; c++) gl[o + c] += g * probabilities[o + c];
                gl[o + targets[r]] -= g;
            });
        });
        return output;
    }
}
