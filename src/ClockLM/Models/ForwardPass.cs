using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using ClockLM.Clock;
using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// The forward pass, once, for every use: a batch of rows (<see cref="TokenBatch"/>: one token, a prompt chunk, or one
/// token of each of several sequences) enters as embeddings (instruction fetch, <see cref="Begin"/>), runs one clock
/// cycle per layer — five stages, each a method below over all rows — and the commit turns the residual streams of
/// the rows that want them into logits. Forward, Evaluate, batched decoding, the server's slots, stepping and tracing
/// all run this code; the stages are its real seams, so a trace times what production runs.
/// </summary>
/// <remarks>
/// <para>The cycle, per row (x is the residual stream, the register file that only write-back changes):</para>
/// <code>
/// fetch:      ask for this layer's and the next layers' weights, brought in while this one computes (<see cref="WeightFetch"/>)
/// decode:     h = norm(x); q, k, v = Wq h, Wk h, Wv h (+ biases; per-head norms); rotate q, k by position (RoPE)
/// memory:     store k, v in the cache at the row's position; attend over the cache; a = Wo attention (+ bias, norm)
/// execute:    m = x + a (forwarded, hook_resid_mid); f = W2 act(W1 norm(m)) * W3 norm(m) (or W2 gelu(W3 norm(m) + b) + b)
/// write-back: x = m + f (+ the sequence's steering direction of this layer, if any)
/// </code>
/// <para>With LoRA adapters (the row's sequence's <see cref="Transformer.Lora"/>, else <see cref="LlamaWeights.Lora"/>)
/// every adapted product W·x becomes W·x + f·B·(A·x), the low-rank term added right after the base product (before
/// biases), as llama.cpp's <c>build_lora_mm</c> adds it; an adapted embedding adds f·B·A[:, token] to the token's row.
/// Each row gets its own sequence's adapters, so rows with different adapters share a step.</para>
/// <para>Families differ only by data: the config's options (<see cref="LlamaConfig"/>: norm, RoPE style, activation,
/// scales, soft-caps, sliding windows) and the weights' optional parts (<see cref="LlamaLayerWeights"/>: biases, head
/// norms, post-norms), each tested in one place here. Every matrix product takes all rows at once
/// (<see cref="MatMul"/>), whose results are bit-identical to one row at a time, and q/k/v (gate/up) share one quantized
/// input (<see cref="ProductInput"/>); the rest is per row, so a row's result never depends on the batch it ran in.</para>
/// </remarks>
internal sealed class ForwardPass
{
    private readonly LlamaConfig _c;
    private readonly LlamaWeights _w;
    private readonly float[] _theta;        // RoPE frequencies theta_i (head_size / 2)
    private readonly float[] _thetaSliding; // those of sliding-window layers (the same array unless their base differs)
    private readonly float _attentionScale;
    private readonly KernelOptions _kernels; // every product and layer kernel runs on these (ModelOptions.Kernels)

    public ForwardPass(LlamaConfig config, LlamaWeights weights)
    {
        _c = config;
        _w = weights;
        _theta = RopeFrequencies(config.RopeBase, config.HeadSize, weights.RopeFrequencyFactors);
        _thetaSliding = config.RopeBaseSliding is { } slidingBase ? RopeFrequencies(slidingBase, config.HeadSize, weights.RopeFrequencyFactors) : _theta;
        _attentionScale = config.AttentionScale ?? 1.0f / MathF.Sqrt(config.HeadSize);
        _kernels = weights.Kernels;
        Costs = new StageCosts(config, weights);
    }

    /// <summary>Bytes and operations of every stage, for observers.</summary>
    public StageCosts Costs { get; }

    /// <summary>The RoPE frequencies theta_i of <paramref name="layer"/> (head_size / 2): its keys were rotated by
    /// position * theta_i.</summary>
    public ReadOnlySpan<float> RopeFrequencies(int layer) => _c.IsSliding(layer) ? _thetaSliding : _theta;

    // theta_i = base^(-2i / head_size), divided by the model's frequency factor when it has them (Llama 3.1)
    private static float[] RopeFrequencies(float ropeBase, int headSize, float[]? factors)
    {
        var theta = new float[headSize / 2];
        for (int i = 0; i < theta.Length; i++)
            theta[i] = 1.0f / MathF.Pow(ropeBase, 2 * i / (float)headSize) / (factors?[i] ?? 1.0f);
        return theta;
    }

    /// <summary>The whole pass: <see cref="Begin"/>, every stage of every cycle, <see cref="Commit"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs once per token or chunk: too rarely for tiering to promote it soon
    public void Run(TokenBatch b, WorkerPool? pool)
    {
        Begin(b);
        while (b.Layer < _c.Layers) Step(b, pool);
        Commit(b, pool);
    }

    /// <summary>Instruction fetch: every row's token embedding (scaled; plus its position's embedding in GPT-2) into
    /// its residual stream, and the rows' RoPE angles; the clock then stands before cycle 0's fetch.</summary>
    public void Begin(TokenBatch b)
    {
        bool timed = b.Observers.Count > 0;
        if (timed) b.Seams[0] = Stopwatch.GetTimestamp();
        int n = b.Count, dim = _c.Dim, half = _c.HeadSize / 2;
        for (int i = 0; i < n; i++)
        {
            Span<float> x = TokenBatch.Row(b.X, i, dim);
            _w.TokenEmbedding.DequantizeRow(b.Tokens[i], x);
            LoraOf(b, i)?.ApplyEmbedding(b.Tokens[i], x);
            if (_c.EmbeddingScale != 1f) Ops.Scale(x, _c.EmbeddingScale);
            if (_w.PositionEmbedding is { } positions)
            {
                Span<float> p = TokenBatch.Row(b.XB, i, dim);
                positions.DequantizeRow(b.Positions[i], p);
                Ops.Add(x, p);
            }
            if (_c.Rope == RopeStyle.None) continue;
            Ops.RopeAngles(b.Positions[i], _theta, TokenBatch.Row(b.RopeCos, i, half), TokenBatch.Row(b.RopeSin, i, half));
            if (_thetaSliding != _theta)
                Ops.RopeAngles(b.Positions[i], _thetaSliding, TokenBatch.Row(b.RopeCosSliding, i, half), TokenBatch.Row(b.RopeSinSliding, i, half));
        }
        (b.Layer, b.NextStage, b.InFlight, b.StagesReported) = (0, Stage.Fetch, true, 0);
        if (!timed) return;
        b.Seams[1] = Stopwatch.GetTimestamp();
        b.EmbeddingTicks = b.Seams[1] - b.Seams[0];
    }

    /// <summary>Runs the next stage of the batch's current cycle and advances the clock. With observers attached the
    /// stage's end is one timestamp into the batch's seams; its event is handed over by <see cref="Report"/>.</summary>
    public void Step(TokenBatch b, WorkerPool? pool)
    {
        int layer = b.Layer;
        Stage stage = b.NextStage;
        switch (stage)
        {
            case Stage.Fetch: b.FetchedBytes[layer] = Fetch(layer); break;
            case Stage.Decode: Decode(b, layer, pool); break;
            case Stage.Memory: Memory(b, layer, pool); break;
            case Stage.Execute: Execute(b, layer, pool); break;
            case Stage.WriteBack: WriteBack(b, layer); break;
        }
        if (b.Observers.Count > 0)
        {
            int seam = TokenBatch.SeamAfter(layer, stage);
            b.Seams[seam] = Untimed(b, layer, stage) ? b.Seams[seam - 1] : Stopwatch.GetTimestamp();
        }
        if (stage == Stage.WriteBack) (b.Layer, b.NextStage) = (layer + 1, Stage.Fetch);
        else b.NextStage = stage + 1;
    }

    /// <summary>A write-back of fewer floats than this (rows * dim) adds up in less time than a timestamp costs (about
    /// 20 ns): one row of a model of dim 1024 or less.</summary>
    private const int UntimedWriteBack = 1024;

    /// <summary>
    /// True when a stage's work is less than the timestamp that would time it: a fetch that asked for nothing (every
    /// page already asked for, or no fetch unit), a check of a few nanoseconds, and a write-back of one small row,
    /// x = m + f over a few hundred floats. Such a stage takes no timestamp: it ends where it began (0 ticks) and its
    /// nanoseconds count in the stage after it (the next cycle's decode, or the commit).
    /// </summary>
    private bool Untimed(TokenBatch b, int layer, Stage stage) => stage switch
    {
        Stage.Fetch => b.FetchedBytes[layer] == 0,
        Stage.WriteBack => b.Count * _c.Dim < UntimedWriteBack,
        _ => false,
    };

    /// <summary>Stepping: the caller looked at the batch between stages, so the next stage (or the commit) starts now
    /// rather than where the last one ended; the wait belongs to no stage.</summary>
    public void Resume(TokenBatch b)
    {
        if (b.Observers.Count > 0) b.Seams[TokenBatch.SeamAfter(b.Layer, b.NextStage) - 1] = Stopwatch.GetTimestamp();
    }

    /// <summary>
    /// Hands the observers, in one <see cref="ICycleObserver.OnReport"/> call each, every stage that has run since the
    /// last report and, when <paramref name="committed"/>, the pass's token: at the commit, all of the pass's (so nothing
    /// an observer does falls between two seams and into a stage's time), or one stage at a time when stepping. The
    /// report reads the seams and <see cref="Costs"/> (counted per layer when the model loaded) as the observer asks:
    /// the engine builds no event itself.
    /// </summary>
    public void Report(TokenBatch b, bool committed)
    {
        int ran = b.Layer * StageNames.Count + (int)b.NextStage; // stages run so far, in order
        if (b.Observers.Count == 0 || (b.StagesReported == ran && !committed)) return;
        var report = b.Report ??= new CycleReport(b, Costs);
        report.Set(b.StagesReported, ran - b.StagesReported, committed);
        var observers = b.Observers;
        for (int i = 0; i < observers.Count; i++) observers[i].OnReport(report);
        b.StagesReported = ran;
    }

    // Fetch: ask for this layer's weights and the next ones' (the output head after the last layer), which come in while
    // this one computes. Only weights still in the file's pages are fetched, each once; after that the stage is idle.
    private long Fetch(int layer) => _w.Fetch?.Ahead(layer) ?? 0;

    // Decode: normalise the residual stream, project to q, k, v (plus their biases: Qwen 2, GPT-2), normalise every
    // q and k head (Qwen 3, Gemma 3), rotate q and k by position (not in GPT-2).
    private void Decode(TokenBatch b, int layer, WorkerPool? pool)
    {
        LlamaLayerWeights w = _w.Layers[layer];
        int n = b.Count, dim = _c.Dim, qDim = _c.QDim, kvDim = _c.KvDim, half = _c.HeadSize / 2;
        if (b.Hooked) Hook(b, ActivationPoint.ResidPre, layer, b.X, dim);
        for (int i = 0; i < n; i++) Normalize(TokenBatch.Row(b.XB, i, dim), TokenBatch.Row(b.X, i, dim), w.AttnNorm, w.AttnNormBias);
        var input = Load(b.Normed, b.XB, n, dim); // quantized once for all three
        MatMul.Multiply(w.Wq, input, b.Q, pool, _kernels);
        MatMul.Multiply(w.Wk, input, b.K, pool, _kernels);
        MatMul.Multiply(w.Wv, input, b.V, pool, _kernels);
        AddLora(b, pool, layer, LoraTarget.AttnQ, b.XB, b.Q);
        AddLora(b, pool, layer, LoraTarget.AttnK, b.XB, b.K);
        AddLora(b, pool, layer, LoraTarget.AttnV, b.XB, b.V);
        bool sliding = _c.IsSliding(layer) && _thetaSliding != _theta;
        float[] cos = sliding ? b.RopeCosSliding : b.RopeCos, sin = sliding ? b.RopeSinSliding : b.RopeSin;
        for (int i = 0; i < n; i++)
        {
            Span<float> q = TokenBatch.Row(b.Q, i, qDim), k = TokenBatch.Row(b.K, i, kvDim), v = TokenBatch.Row(b.V, i, kvDim);
            if (w.BiasQ is not null) Ops.Add(q, w.BiasQ);
            if (w.BiasK is not null) Ops.Add(k, w.BiasK);
            if (w.BiasV is not null) Ops.Add(v, w.BiasV);
            if (w.QNorm is not null) RmsNormHeads(q, w.QNorm);
            if (w.KNorm is not null) RmsNormHeads(k, w.KNorm);
            if (b.Hooked && b.Sequences[i].Hook is { } hook)
            {
                // Per head, before RoPE (TransformerLens's hook_q, hook_k, hook_v).
                hook(ActivationPoint.AttnQ, layer, b.Positions[i], q);
                hook(ActivationPoint.AttnK, layer, b.Positions[i], k);
                hook(ActivationPoint.AttnV, layer, b.Positions[i], v);
            }
            if (_c.Rope == RopeStyle.None) continue;
            ReadOnlySpan<float> rowCos = TokenBatch.Row(cos, i, half), rowSin = TokenBatch.Row(sin, i, half);
            Ops.Rope(q, _c.HeadSize, _c.Rope, rowCos, rowSin);
            Ops.Rope(k, _c.HeadSize, _c.Rope, rowCos, rowSin);
        }
    }

    // Memory: every row's key and value into its sequence's cache, before any row attends, so a prompt token sees the
    // earlier tokens of its chunk (and never a later one: attention stops at its position); then attention of every
    // (row, head) over the row's own cache, and the output projection (normalised again in Gemma).
    private void Memory(TokenBatch b, int layer, WorkerPool? pool)
    {
        LlamaLayerWeights w = _w.Layers[layer];
        int n = b.Count, dim = _c.Dim, kvDim = _c.KvDim;
        for (int i = 0; i < n; i++) // converted to the sequence's cache types (F32, F16, Q8_0)
            b.Sequences[i].Cache.Store(layer, b.Positions[i], TokenBatch.Row(b.K, i, kvDim), TokenBatch.Row(b.V, i, kvDim));
        Attend(b, layer, pool);
        if (b.Hooked) Hook(b, ActivationPoint.AttnZ, layer, b.Heads, _c.QDim);
        MatMul.Multiply(w.Wo, Load(b.HeadsInput, b.Heads, n, _c.QDim), b.AttnOut, pool, _kernels);
        AddLora(b, pool, layer, LoraTarget.AttnOutput, b.Heads, b.AttnOut);
        for (int i = 0; i < n; i++)
        {
            Span<float> o = TokenBatch.Row(b.AttnOut, i, dim);
            if (w.BiasO is not null) Ops.Add(o, w.BiasO);
            if (w.PostAttnNorm is not null) RmsNorm(o, o, w.PostAttnNorm, _c.RmsEpsilon);
        }
        if (b.Hooked) Hook(b, ActivationPoint.AttnOut, layer, b.AttnOut, dim);
    }

    // Execute: the feed-forward network on the residual stream with the attention output forwarded into it (m = x + a):
    // gated, w2(act(w1 h) * w3 h) with act = silu (SwiGLU) or gelu (Gemma), or plain, w2 gelu(w3 h + b) + b (GPT-2);
    // its output normalised again in Gemma.
    private void Execute(TokenBatch b, int layer, WorkerPool? pool)
    {
        LlamaLayerWeights w = _w.Layers[layer];
        int n = b.Count, dim = _c.Dim, hidden = _c.HiddenDim;
        for (int i = 0; i < n; i++) Ops.Sum(TokenBatch.Row(b.Mid, i, dim), TokenBatch.Row(b.X, i, dim), TokenBatch.Row(b.AttnOut, i, dim));
        if (b.Hooked) Hook(b, ActivationPoint.ResidMid, layer, b.Mid, dim);
        for (int i = 0; i < n; i++) Normalize(TokenBatch.Row(b.XB, i, dim), TokenBatch.Row(b.Mid, i, dim), w.FfnNorm, w.FfnNormBias);
        var input = Load(b.Normed, b.XB, n, dim); // quantized once for gate and up
        if (_c.FeedForward == FeedForward.Gelu)
        {
            MatMul.Multiply(w.W3, input, b.HB, pool, _kernels);
            AddLora(b, pool, layer, LoraTarget.FfnUp, b.XB, b.HB);
            if (w.BiasUp is not null)
                for (int i = 0; i < n; i++) Ops.Add(TokenBatch.Row(b.HB, i, hidden), w.BiasUp);
        }
        else
        {
            MatMul.Multiply(w.W1, input, b.HB, pool, _kernels);
            MatMul.Multiply(w.W3, input, b.HB2, pool, _kernels);
            AddLora(b, pool, layer, LoraTarget.FfnGate, b.XB, b.HB);
            AddLora(b, pool, layer, LoraTarget.FfnUp, b.XB, b.HB2);
        }
        // The activation, row by row (element-wise, so split across the pool it is the same arithmetic).
        var activation = new ActivationJob { Kind = _c.FeedForward, Gate = b.HB, Up = b.HB2, Width = hidden, Path = _kernels.Path };
        if (pool is null || n < 2) activation.Execute(0, n);
        else pool.Run(activation, n);
        if (b.Hooked) Hook(b, ActivationPoint.MlpPost, layer, b.HB, hidden);
        MatMul.Multiply(w.W2, Load(b.Hidden, b.HB, n, hidden), b.FfnOut, pool, _kernels);
        AddLora(b, pool, layer, LoraTarget.FfnDown, b.HB, b.FfnOut);
        for (int i = 0; i < n; i++)
        {
            Span<float> f = TokenBatch.Row(b.FfnOut, i, dim);
            if (w.BiasDown is not null) Ops.Add(f, w.BiasDown);
            if (w.PostFfnNorm is not null) RmsNorm(f, f, w.PostFfnNorm, _c.RmsEpsilon);
        }
        if (b.Hooked) Hook(b, ActivationPoint.MlpOut, layer, b.FfnOut, dim);
    }

    // Write-back: the residual stream takes the attention and feed-forward outputs, x = (x + a) + f, and then the row's
    // sequence's steering direction for this layer if it has one, x += d (where llama.cpp adds a control vector).
    private void WriteBack(TokenBatch b, int layer)
    {
        int dim = _c.Dim;
        for (int i = 0; i < b.Count; i++)
        {
            Span<float> x = TokenBatch.Row(b.X, i, dim);
            Ops.Sum(x, TokenBatch.Row(b.Mid, i, dim), TokenBatch.Row(b.FfnOut, i, dim));
            if (b.Sequences[i].Steering?.Direction(layer) is { } direction) Ops.Add(x, direction);
        }
        if (b.Hooked) Hook(b, ActivationPoint.ResidPost, layer, b.X, dim);
    }

    /// <summary>
    /// Commit: the final norm and output head turn the residual streams of rows <see cref="TokenBatch.LogitsFrom"/>..
    /// into logits (soft-capped in Gemma 2), each in its sequence's logits, and every row retires: each sequence is left
    /// as after its last row, position, token and residual stream.
    /// </summary>
    public void Commit(TokenBatch b, WorkerPool? pool)
    {
        int n = b.Count, dim = _c.Dim, vocab = _c.VocabSize, first = b.LogitsFrom, withLogits = n - first;
        for (int i = first; i < n; i++)
            Normalize(TokenBatch.Row(b.XB, i, dim), TokenBatch.Row(b.X, i, dim), _w.FinalNorm, _w.FinalNormBias);
        if (withLogits > 0)
        {
            // One row's logits go straight to its sequence; several rows' through the batch's buffer.
            float[] logits = withLogits == 1 ? b.Sequences[first].LogitsBuffer : b.Logits(withLogits);
            MatMul.Multiply(_w.Output, b.Normed.Load(b.XB, first, withLogits, dim), logits, pool, _kernels);
            AddLora(b, pool, LoraAdapters.OutputHead, default, b.XB.AsSpan(first * dim), logits, first);
            for (int i = first; i < n; i++)
            {
                Span<float> rowLogits = withLogits == 1 ? logits : logits.AsSpan((i - first) * vocab, vocab);
                if (_c.FinalSoftcap > 0) Ops.Softcap(rowLogits, _c.FinalSoftcap);
                if (withLogits > 1) rowLogits.CopyTo(b.Sequences[i].LogitsBuffer);
            }
        }
        for (int i = 0; i < n; i++) b.Sequences[i].Retire(b.Positions[i], TokenBatch.Row(b.X, i, dim));
        b.InFlight = false;

        if (b.Observers.Count == 0) return;
        b.Seams[^1] = Stopwatch.GetTimestamp();
        Report(b, committed: true);
    }

    /// <summary>The logits of row <paramref name="i"/> of the last commit (overwritten by the next one).</summary>
    public ReadOnlySpan<float> RowLogits(TokenBatch b, int i) =>
        b.Count - b.LogitsFrom == 1 ? b.Sequences[i].LogitsBuffer : b.Logits(b.Count - b.LogitsFrom).AsSpan((i - b.LogitsFrom) * _c.VocabSize, _c.VocabSize);

    /// <summary>
    /// Attention of every (row, head): softmax over t of q · k_t · scale (soft-capped in Gemma 2) for the positions the
    /// row sees (all up to its own, or the last window of them on a sliding layer), then the weighted sum of the values,
    /// into <see cref="TokenBatch.Heads"/>. Query head h reads key/value head h / group (GQA); the heads of a group run
    /// together, each key and value read once for all of them (<see cref="GroupedAttention"/>, in the cache's own
    /// types). With a hook attached the weights of all heads of a row are kept (heads, pos+1) for
    /// <see cref="ActivationPoint.AttentionPattern"/> before the sums; the float operations are the same either way.
    /// </summary>
    private void Attend(TokenBatch b, int layer, WorkerPool? pool)
    {
        int n = b.Count, heads = _c.Heads, items = n * _c.KvHeads;
        var job = new AttentionJob
        {
            Batch = b, Layer = layer, KvHeads = _c.KvHeads, HeadSize = _c.HeadSize, KvGroup = _c.KvGroup,
            Scale = _attentionScale, Softcap = _c.AttentionSoftcap, Window = _c.IsSliding(layer) ? _c.SlidingWindow : 0,
            Path = _kernels.Path,
        };
        // Splitting pays when the items hold enough work to amortise waking the pool (tens of microseconds).
        long work = 0;
        for (int i = 0; i < n; i++) work += (long)(b.Positions[i] + 1) * _c.QDim;
        bool split = pool is not null && items >= 2 && work >= 32 * 1024;
        if (!b.Hooked)
        {
            job.Phase = AttentionJob.Whole;
            Run(job, items, split ? pool : null);
            return;
        }
        job.Patterns = b.Patterns(heads);
        job.Phase = AttentionJob.Weights;
        Run(job, items, split ? pool : null);
        for (int i = 0; i < n; i++)
            if (b.Sequences[i].Hook is { } hook)
                hook(ActivationPoint.AttentionPattern, layer, b.Positions[i], b.Pattern(i, heads));
        job.Phase = AttentionJob.Sums;
        Run(job, items, split ? pool : null);
    }

    private static void Run<TJob>(TJob job, int items, WorkerPool? pool) where TJob : struct, IRowRangeJob
    {
        if (pool is null) job.Execute(0, items);
        else pool.Run(job, items);
    }

    /// <summary>Attention of items [start, end), item = row * kv_heads + kv head: the query heads of one group over its
    /// key/value head. Items do not interact, so any split of them across threads gives the same results.</summary>
    private struct AttentionJob : IRowRangeJob
    {
        public const int Whole = 0, Weights = 1, Sums = 2;
        [ThreadStatic] private static float[]? _scores;

        public TokenBatch Batch;
        public float[]? Patterns; // (rows, heads, pos+1) when a hook reads them, row i at Batch.PatternOffset(i)
        public int Phase, Layer, KvHeads, HeadSize, KvGroup, Window;
        public float Scale, Softcap;
        public KernelPath Path;

        public readonly void Execute(int start, int end)
        {
            var b = Batch;
            for (int item = start; item < end; item++)
            {
                int i = item / KvHeads, kvHead = item % KvHeads, pos = b.Positions[i], count = pos + 1;
                var cache = b.Sequences[i].Cache;
                int firstHead = kvHead * KvGroup, kvOffset = kvHead * HeadSize, qDim = KvHeads * KvGroup * HeadSize;
                // The group's weights, (group, stride) of which the first count of each row are used: its heads are
                // consecutive, so also in a row's patterns (stride count). In scratch, the rows start a cache line or
                // two apart modulo 4 KiB, not in the same sets of the L1 cache, which the kernels read them in turns from.
                Span<float> att;
                int stride = Patterns is null ? (count + 15) / 16 * 16 + 16 : count;
                if (Patterns is null)
                {
                    var scores = _scores;
                    if (scores is null || scores.Length < KvGroup * stride) _scores = scores = new float[Math.Max(KvGroup * stride, 256)];
                    att = scores.AsSpan(0, KvGroup * stride);
                }
                else att = Patterns.AsSpan(b.PatternOffset(i) + firstHead * count, KvGroup * count);
                var heads = b.Q.AsSpan(i * qDim + firstHead * HeadSize, KvGroup * HeadSize);

                if (Phase != Sums)
                {
                    // A sliding-window layer sees positions first..pos only; the ones before get weight 0.
                    int first = Window > 0 ? Math.Max(0, pos - Window + 1) : 0;
                    for (int g = 0; g < KvGroup; g++) att.Slice(g * stride, first).Fill(float.NegativeInfinity);
                    if (GroupedAttention.Scores(heads, HeadSize, cache.Keys(Layer, first, count - first, kvOffset), Scale,
                        att[first..], stride, Path)) cache.CountExactHalfWidening();
                    for (int g = 0; g < KvGroup; g++)
                    {
                        Span<float> weights = att.Slice(g * stride, count);
                        if (Softcap > 0) Ops.Softcap(weights[first..], Softcap);
                        AttentionKernels.Softmax(weights, Path);
                    }
                }
                if (Phase != Weights && GroupedAttention.WeightedSums(att, stride, cache.Values(Layer, 0, count, kvOffset),
                        b.Heads.AsSpan(i * qDim + firstHead * HeadSize, KvGroup * HeadSize), HeadSize, Path))
                    cache.CountExactHalfWidening();
            }
        }
    }

    /// <summary>The feed-forward activation of rows [start, end): gelu(up), gelu(gate) * up or silu(gate) * up into gate.</summary>
    private struct ActivationJob : IRowRangeJob
    {
        public FeedForward Kind;
        public float[] Gate, Up;
        public int Width;
        public KernelPath Path;

        public readonly void Execute(int start, int end)
        {
            Span<float> gate = Gate.AsSpan(start * Width, (end - start) * Width);
            ReadOnlySpan<float> up = Up.AsSpan(start * Width, (end - start) * Width);
            if (Kind == FeedForward.Gelu) Ops.Gelu(gate);
            else if (Kind == FeedForward.GeluGated) Ops.GeluGated(gate, up);
            else GatedActivation.SwiGlu(gate, up, Path);
        }
    }

    /// <summary>The LoRA adapters of row <paramref name="i"/>: its sequence's own, else the model's; null for none.</summary>
    private LoraAdapters? LoraOf(TokenBatch b, int i) => b.Sequences[i].Lora ?? _w.Lora;

    /// <summary>Adds each row's LoRA term of a product (<see cref="LoraAdapters.Apply"/>) for batch rows
    /// [<paramref name="firstRow"/>, count), which are rows 0.. of <paramref name="input"/> and <paramref name="output"/>.
    /// Consecutive rows with the same adapters go in one call; the arithmetic of a row is the same either way.</summary>
    private void AddLora(TokenBatch b, WorkerPool? pool, int layer, LoraTarget target, ReadOnlySpan<float> input, Span<float> output, int firstRow = 0)
    {
        int n = b.Count;
        for (int start = firstRow, end; start < n; start = end)
        {
            var lora = LoraOf(b, start);
            for (end = start + 1; end < n && LoraOf(b, end) == lora; end++) { }
            lora?.Apply(layer, target, input, output, start - firstRow, end - start, pool, _kernels);
        }
    }

    /// <summary>Calls each row's hook (if its sequence has one) with the row of <paramref name="buffer"/>.</summary>
    private static void Hook(TokenBatch b, ActivationPoint point, int layer, float[] buffer, int width)
    {
        for (int i = 0; i < b.Count; i++)
            b.Sequences[i].Hook?.Invoke(point, layer, b.Positions[i], TokenBatch.Row(buffer, i, width));
    }

    /// <summary>Rows [0, rows) of the pinned <paramref name="buffer"/> as <paramref name="input"/>, loaded afresh.</summary>
    private static ProductInput Load(ProductInput input, float[] buffer, int rows, int width) => input.Load(buffer, 0, rows, width);

    /// <summary>The model's normalisation: RMSNorm, or LayerNorm with <paramref name="bias"/>.</summary>
    private void Normalize(Span<float> output, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float[]? bias)
    {
        if (_c.Normalization == Normalization.RmsNorm) RmsNorm(output, x, weight, _c.RmsEpsilon);
        else Ops.LayerNorm(output, x, weight, bias, _c.RmsEpsilon);
    }

    private static void RmsNorm(Span<float> output, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps) =>
        Ops.RmsNorm(output, x, weight, eps);

    /// <summary>RMSNorm of each head of <paramref name="vec"/> on its own, in place, with one weight (head_size) for all.</summary>
    private void RmsNormHeads(Span<float> vec, ReadOnlySpan<float> weight)
    {
        int headSize = _c.HeadSize;
        for (int h = 0; h < vec.Length; h += headSize)
        {
            Span<float> head = vec.Slice(h, headSize);
            RmsNorm(head, head, weight, _c.RmsEpsilon);
        }
    }
}
