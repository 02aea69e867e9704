using System.Diagnostics;
using System.Runtime.Intrinsics;
using ClockLM.Clock;
using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// The forward pass of Llama and of the families that differ from it by a few options of <see cref="LlamaConfig"/> and
/// <see cref="LlamaWeights"/> (Mistral, Qwen 2/3, Phi-3, Gemma 2/3, GPT-2), one token at a time, as a processor runs instructions: the token's embedding is
/// fetched into the residual stream (instruction fetch), then every layer runs as one clock cycle of five stages
/// (<see cref="Stage"/>: fetch, decode, memory, execute, write-back), and the output head commits the logits.
/// The clock can be stepped one stage at a time (<see cref="BeginToken"/>, <see cref="Step"/>, <see cref="Commit"/>);
/// an <see cref="Observer"/> receives an event per stage and a <see cref="Hook"/> reads or replaces activations.
/// With neither attached the cycle costs two null checks per stage more than a plain loop.
/// Reads like llama2.c's run.c; the speed lives in <see cref="MatVec"/>.
/// </summary>
public sealed partial class Transformer
{
    private readonly float[] _x;       // residual stream (dim)
    private readonly float[] _xb;      // normalised input / feed-forward output (dim)
    private readonly float[] _xb2;     // projection output (dim)
    private readonly float[] _q;       // query (q_dim)
    private readonly float[] _k;       // key of this position (kv_dim)
    private readonly float[] _v;       // value of this position (kv_dim)
    private readonly float[] _attnOut; // attention output, all heads (q_dim)
    private readonly float[] _hb;      // feed-forward gate (hidden_dim)
    private readonly float[] _hb2;     // feed-forward up (hidden_dim)
    private readonly float[] _att;     // attention weights of all heads (heads, pos+1), row-major
    private readonly float[] _logits;  // output (vocab)
    private readonly float[] _ropeFrequencies; // theta_i (head_size / 2)
    private readonly float[] _ropeFrequenciesSliding; // theta_i of sliding-window layers (head_size / 2); the same array unless their base differs
    private readonly float[] _ropeCos, _ropeSin; // cos and sin of pos * theta_i (head_size / 2) for _ropePos and _ropeTheta
    private int _ropePos = -1;
    private float[]? _ropeTheta;

    private readonly WorkerPool? _pool;

    // The clock: which token is in flight and which stage of which cycle runs next.
    private int _token, _pos;
    private int _layer;              // next cycle; Config.Layers once all cycles ran
    private Stage _stage;            // next stage of that cycle
    private bool _inFlight;          // between BeginToken and Commit
    private long _tokenStart, _embeddingTicks;

    /// <summary>Creates a processor for <paramref name="weights"/> with a KV cache of <paramref name="contextLength"/> positions.
    /// Matrix-vector products are split across <paramref name="pool"/>'s threads when one is given.</summary>
    public Transformer(LlamaConfig config, LlamaWeights weights, int contextLength, WorkerPool? pool = null)
    {
        Config = config;
        _pool = pool;
        Weights = weights;
        Cache = new KvCache(config, contextLength);
        _x = new float[config.Dim];
        _xb = new float[config.Dim];
        _xb2 = new float[config.Dim];
        _q = new float[config.QDim];
        _k = new float[config.KvDim];
        _v = new float[config.KvDim];
        _attnOut = new float[config.QDim];
        _hb = new float[config.HiddenDim];
        _hb2 = new float[config.HiddenDim];
        _att = new float[(long)config.Heads * contextLength];
        _logits = new float[config.VocabSize];
        _ropeFrequencies = RopeFrequencies(config.RopeBase, config.HeadSize, weights.RopeFrequencyFactors);
        _ropeFrequenciesSliding = config.RopeBaseSliding is { } slidingBase
            ? RopeFrequencies(slidingBase, config.HeadSize, weights.RopeFrequencyFactors) : _ropeFrequencies;
        _ropeCos = new float[config.HeadSize / 2];
        _ropeSin = new float[config.HeadSize / 2];
    }

    // theta_i = base^(-2i / head_size), divided by the model's frequency factor when it has them (Llama 3.1)
    private static float[] RopeFrequencies(float ropeBase, int headSize, float[]? factors)
    {
        var theta = new float[headSize / 2];
        for (int i = 0; i < theta.Length; i++)
            theta[i] = 1.0f / MathF.Pow(ropeBase, 2 * i / (float)headSize) / (factors?[i] ?? 1.0f);
        return theta;
    }

    public LlamaConfig Config { get; }
    public LlamaWeights Weights { get; }
    public KvCache Cache { get; }

    /// <summary>Positions the KV cache holds.</summary>
    public int ContextLength => Cache.ContextLength;

    /// <summary>The residual stream: after the last <see cref="Forward"/>, or wherever a stepped token stands.</summary>
    public ReadOnlySpan<float> Residual => _x;

    /// <summary>Receives an event per stage and per token; null (the default) costs nothing measurable.</summary>
    public ICycleObserver? Observer { get; set; }

    /// <summary>Called at every <see cref="ActivationPoint"/> of every cycle; may replace the activation.</summary>
    public ActivationHook? Hook { get; set; }

    /// <summary>Position of the token in flight (or the last one run).</summary>
    public int Position => _pos;

    /// <summary>The cycle (layer) that runs next; <see cref="LlamaConfig.Layers"/> when every cycle of the token has run.</summary>
    public int Layer => _layer;

    /// <summary>The stage of <see cref="Layer"/> that runs next.</summary>
    public Stage NextStage => _stage;

    /// <summary>True between <see cref="BeginToken"/> and <see cref="Commit"/>.</summary>
    public bool TokenInFlight => _inFlight;

    /// <summary>Runs token <paramref name="token"/> at position <paramref name="pos"/> and returns the logits (vocab).
    /// The span is overwritten by the next call.</summary>
    public ReadOnlySpan<float> Forward(int token, int pos)
    {
        RunToken(token, pos, computeLogits: true);
        return _logits;
    }

    /// <summary>Evaluates a prompt: tokens at positions startPos, startPos+1, … and returns the logits of the last one.
    /// Runs chunks of up to <see cref="MicroBatch"/> tokens through each cycle together when no observer or hook is attached.</summary>
    public ReadOnlySpan<float> Evaluate(ReadOnlySpan<int> tokens, int startPos)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to evaluate", nameof(tokens));
        if (UsesChunks(tokens.Length)) return EvaluateChunked(tokens, startPos);
        for (int i = 0; i < tokens.Length; i++)
            RunToken(tokens[i], startPos + i, computeLogits: i == tokens.Length - 1);
        return _logits;
    }

    /// <summary>Evaluates <paramref name="tokens"/> from <paramref name="startPos"/> with <paramref name="hook"/> attached
    /// (for this call only, replacing <see cref="Hook"/>) and returns the logits of the last token.</summary>
    public ReadOnlySpan<float> Run(ReadOnlySpan<int> tokens, ActivationHook hook, int startPos = 0)
    {
        var previous = Hook;
        Hook = hook;
        try
        {
            return Evaluate(tokens, startPos);
        }
        finally
        {
            Hook = previous;
        }
    }

    private void RunToken(int token, int pos, bool computeLogits)
    {
        BeginToken(token, pos);
        while (_layer < Config.Layers) Step();
        Commit(computeLogits);
    }

    /// <summary>Instruction fetch: puts token <paramref name="token"/>'s embedding at position <paramref name="pos"/> into the
    /// residual stream. Then call <see cref="Step"/> until <see cref="Layer"/> reaches the layer count, then <see cref="Commit"/>.</summary>
    public void BeginToken(int token, int pos)
    {
        if ((uint)token >= (uint)Config.VocabSize)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary (0..{Config.VocabSize - 1})");
        if ((uint)pos >= (uint)ContextLength)
            throw new ArgumentOutOfRangeException(nameof(pos), pos, $"position outside the context (0..{ContextLength - 1})");
        long start = Observer is null ? 0 : Stopwatch.GetTimestamp();
        (_token, _pos, _layer, _stage, _inFlight) = (token, pos, 0, Stage.Fetch, true);

        Weights.TokenEmbedding.DequantizeRow(token, _x);
        if (Config.EmbeddingScale != 1f) Scale(_x, Config.EmbeddingScale);
        if (Weights.PositionEmbedding is { } positions)
        {
            positions.DequantizeRow(pos, _xb);
            Add(_x, _xb);
        }

        if (Observer is null) return;
        _tokenStart = start;
        _embeddingTicks = Stopwatch.GetTimestamp() - start;
    }

    /// <summary>Runs the next stage of the token in flight and advances the clock.</summary>
    public void Step()
    {
        if (!_inFlight || _layer >= Config.Layers)
            throw new InvalidOperationException(_inFlight ? "every cycle of this token has run; call Commit" : "no token in flight; call BeginToken");
        var observer = Observer;
        long start = observer is null ? 0 : Stopwatch.GetTimestamp();
        int layer = _layer;
        Stage stage = _stage;
        LlamaLayerWeights w = Weights.Layers[layer];
        switch (stage)
        {
            case Stage.Fetch: break; // the weights are views into the mapped file; decode and execute stream them in
            case Stage.Decode: Decode(w, layer); break;
            case Stage.Memory: StoreKeyValue(layer); break;
            case Stage.Execute: Execute(w, layer); break;
            case Stage.WriteBack: WriteBack(layer); break;
        }
        if (stage == Stage.WriteBack) (_layer, _stage) = (layer + 1, Stage.Fetch);
        else _stage = stage + 1;

        if (observer is null) return;
        long elapsed = Stopwatch.GetTimestamp() - start;
        observer.OnStage(Describe(stage, layer, start, elapsed));
    }

    /// <summary>Commit: the final norm and output head turn the residual stream into logits (skipped when
    /// <paramref name="computeLogits"/> is false, as for prompt tokens before the last), and the token is retired.</summary>
    public ReadOnlySpan<float> Commit(bool computeLogits = true)
    {
        if (!_inFlight || _layer < Config.Layers)
            throw new InvalidOperationException(_inFlight ? $"cycle {_layer} has not run yet" : "no token in flight; call BeginToken");
        _inFlight = false;
        long start = Observer is null ? 0 : Stopwatch.GetTimestamp();
        if (computeLogits)
        {
            Normalize(_xb, _x, Weights.FinalNorm, Weights.FinalNormBias);
            MatMul(Weights.Output, _xb, _logits);
            if (Config.FinalSoftcap > 0) Softcap(_logits, Config.FinalSoftcap);
        }
        if (Observer is { } observer)
        {
            long end = Stopwatch.GetTimestamp();
            long bytes = computeLogits ? Weights.Output.ByteCount + 4L * Config.Dim : 0;
            long flops = computeLogits ? 2L * Config.VocabSize * Config.Dim + 4L * Config.Dim : 0;
            observer.OnToken(new TokenEvent(_pos, _token, _tokenStart, end - _tokenStart, _embeddingTicks, end - start, bytes, flops));
        }
        return _logits;
    }

    // Decode: normalise the residual stream, project to q, k, v (plus their biases: Qwen 2, GPT-2), normalise every
    // q and k head (Qwen 3, Gemma 3), rotate q and k by position (not in GPT-2).
    private void Decode(LlamaLayerWeights w, int layer)
    {
        Hook?.Invoke(ActivationPoint.ResidPre, layer, _pos, _x);
        Normalize(_xb, _x, w.AttnNorm, w.AttnNormBias);
        MatMul(w.Wq, _xb, _q);
        MatMul(w.Wk, _xb, _k);
        MatMul(w.Wv, _xb, _v);
        if (w.BiasQ is not null) Add(_q, w.BiasQ);
        if (w.BiasK is not null) Add(_k, w.BiasK);
        if (w.BiasV is not null) Add(_v, w.BiasV);
        if (w.QNorm is not null) RmsNormHeads(_q, w.QNorm);
        if (w.KNorm is not null) RmsNormHeads(_k, w.KNorm);
        float[] theta = Config.IsSliding(layer) ? _ropeFrequenciesSliding : _ropeFrequencies;
        Rope(_q, _pos, theta);
        Rope(_k, _pos, theta);
    }

    /// <summary>RMSNorm of each head of <paramref name="vec"/> on its own, in place, with one weight (head_size) for all.</summary>
    private void RmsNormHeads(Span<float> vec, ReadOnlySpan<float> weight)
    {
        int headSize = Config.HeadSize;
        for (int h = 0; h < vec.Length; h += headSize)
        {
            Span<float> head = vec.Slice(h, headSize);
            RmsNorm(head, head, weight, Config.RmsEpsilon);
        }
    }

    // Memory: store this position's key and value; attention reads back positions 0..pos in execute.
    private void StoreKeyValue(int layer)
    {
        _k.CopyTo(Cache.Key(layer, _pos));
        _v.CopyTo(Cache.Value(layer, _pos));
    }

    // Execute: attention over the cache, its output projection (normalised again in Gemma) added into the residual
    // stream, then the feed-forward network: gated, w2(act(w1 x) * w3 x) with act = silu (SwiGLU) or gelu (Gemma),
    // or plain, w2 gelu(w3 x + b) + b (GPT-2); its output normalised again in Gemma.
    private void Execute(LlamaLayerWeights w, int layer)
    {
        Attention(layer, _pos, _attnOut);
        MatMul(w.Wo, _attnOut, _xb2);
        if (w.BiasO is not null) Add(_xb2, w.BiasO);
        if (w.PostAttnNorm is not null) RmsNorm(_xb2, _xb2, w.PostAttnNorm, Config.RmsEpsilon);
        Hook?.Invoke(ActivationPoint.AttnOut, layer, _pos, _xb2);
        Add(_x, _xb2);
        Hook?.Invoke(ActivationPoint.ResidMid, layer, _pos, _x);
        Normalize(_xb, _x, w.FfnNorm, w.FfnNormBias);
        if (Config.FeedForward == FeedForward.Gelu)
        {
            MatMul(w.W3, _xb, _hb);
            if (w.BiasUp is not null) Add(_hb, w.BiasUp);
            Gelu(_hb);
        }
        else
        {
            MatMul(w.W1, _xb, _hb);
            MatMul(w.W3, _xb, _hb2);
            if (Config.FeedForward == FeedForward.GeluGated) GeluGated(_hb, _hb2);
            else SwiGlu(_hb, _hb2);
        }
        MatMul(w.W2, _hb, _xb);
        if (w.BiasDown is not null) Add(_xb, w.BiasDown);
        if (w.PostFfnNorm is not null) RmsNorm(_xb, _xb, w.PostFfnNorm, Config.RmsEpsilon);
        Hook?.Invoke(ActivationPoint.MlpOut, layer, _pos, _xb);
    }

    // Write-back: the feed-forward output is added into the residual stream.
    private void WriteBack(int layer)
    {
        Add(_x, _xb);
        Hook?.Invoke(ActivationPoint.ResidPost, layer, _pos, _x);
    }

    /// <summary>y = W x, on the pool when there is one.</summary>
    private void MatMul(in TensorView w, ReadOnlySpan<float> x, Span<float> y)
    {
        if (_pool is null) MatVec.Multiply(w, x, y);
        else MatVec.Multiply(w, x, y, _pool);
    }

    /// <summary>Multi-head attention of the current query over cached keys/values 0..pos; output (q_dim) into <paramref name="output"/>.</summary>
    private void Attention(int layer, int pos, Span<float> output)
    {
        int headSize = Config.HeadSize, kvDim = Config.KvDim, n = pos + 1;
        float scale = Config.AttentionScale ?? 1.0f / MathF.Sqrt(headSize), softcap = Config.AttentionSoftcap;
        // A sliding-window layer sees positions first..pos only; the ones before get weight 0.
        int first = Config.IsSliding(layer) ? Math.Max(0, pos - Config.SlidingWindow + 1) : 0;
        ReadOnlySpan<float> keys = Cache.Keys(layer, n);
        ReadOnlySpan<float> values = Cache.Values(layer, n);
        Span<float> pattern = _att.AsSpan(0, Config.Heads * n); // (heads, pos+1)

        // Weights: softmax over t of q_h · k_t / sqrt(head_size) (soft-capped in Gemma 2). Query head h reads key/value
        // head h / group (GQA).
        for (int h = 0; h < Config.Heads; h++)
        {
            int kvOffset = h / Config.KvGroup * headSize;
            ReadOnlySpan<float> q = _q.AsSpan(h * headSize, headSize);
            Span<float> att = pattern.Slice(h * n, n);
            att[..first].Fill(float.NegativeInfinity);
            AttentionKernels.Scores(q, keys[(first * kvDim + kvOffset)..], kvDim, scale, att[first..]);
            if (softcap > 0) Softcap(att[first..], softcap);
            Softmax(att);
        }
        Hook?.Invoke(ActivationPoint.AttentionPattern, layer, pos, pattern);

        // Output of head h: sum over t of att_t * v_t.
        for (int h = 0; h < Config.Heads; h++)
        {
            int kvOffset = h / Config.KvGroup * headSize;
            AttentionKernels.WeightedSum(pattern.Slice(h * n, n), values[kvOffset..], kvDim, output.Slice(h * headSize, headSize));
        }
    }

    /// <summary>
    /// Head <paramref name="h"/> of <see cref="Attention"/> on its own: query <paramref name="q"/> (head_size) over the
    /// cached keys/values 0..pos, weights into <paramref name="att"/> (pos+1), output into <paramref name="output"/>
    /// (head_size). The same operations as that head's part of <see cref="Attention"/>, so chunks may run heads apart.
    /// </summary>
    private void AttendHead(int layer, int pos, int h, ReadOnlySpan<float> q, Span<float> att, Span<float> output)
    {
        int headSize = Config.HeadSize, kvDim = Config.KvDim, n = pos + 1;
        float scale = Config.AttentionScale ?? 1.0f / MathF.Sqrt(headSize), softcap = Config.AttentionSoftcap;
        int first = Config.IsSliding(layer) ? Math.Max(0, pos - Config.SlidingWindow + 1) : 0;
        int kvOffset = h / Config.KvGroup * headSize;
        att[..first].Fill(float.NegativeInfinity);
        AttentionKernels.Scores(q, Cache.Keys(layer, n)[(first * kvDim + kvOffset)..], kvDim, scale, att[first..]);
        if (softcap > 0) Softcap(att[first..], softcap);
        Softmax(att);
        AttentionKernels.WeightedSum(att, Cache.Values(layer, n)[kvOffset..], kvDim, output);
    }

    /// <summary>The work a stage did, for observers: bytes moved and floating-point operations.</summary>
    private StageEvent Describe(Stage stage, int layer, long start, long elapsed)
    {
        var c = Config;
        long dim = c.Dim, qDim = c.QDim, kvDim = c.KvDim, hidden = c.HiddenDim, n = _pos + 1;
        long weightBytes = 0, kvRead = 0, kvWritten = 0, flops = 0;
        switch (stage)
        {
            case Stage.Fetch:
                weightBytes = Weights.Layers[layer].ByteCount;
                break;
            case Stage.Decode:
                // rmsnorm (4 per element), q/k/v projections (2 per weight), rope (6 per pair on q and k)
                flops = 4 * dim + 2 * dim * (qDim + 2 * kvDim) + 3 * (qDim + kvDim);
                break;
            case Stage.Memory:
                kvWritten = 2 * kvDim * sizeof(float);
                break;
            case Stage.Execute:
                kvRead = 2 * n * kvDim * sizeof(float);
                // scores and weighted sums (4 per head element per position), softmax (about 3 per score),
                // wo, residual add, rmsnorm, w1/w3/w2, swiglu (about 5 per element)
                flops = 4 * n * qDim + 3 * n * c.Heads + 2 * dim * qDim + dim + 4 * dim + 6 * dim * hidden + 5 * hidden;
                break;
            case Stage.WriteBack:
                flops = dim;
                break;
        }
        return new StageEvent(_pos, layer, stage, start, elapsed, weightBytes, kvRead, kvWritten, flops);
    }

    /// <summary>RoPE: rotates pair i of every head by pos * theta_i (<paramref name="theta"/>). A pair is elements (2i, 2i+1) of the head
    /// (<see cref="RopeStyle.Adjacent"/>) or (i, i + head_size/2) (<see cref="RopeStyle.Halves"/>).</summary>
    private void Rope(Span<float> vec, int pos, float[] theta)
    {
        if (Config.Rope == RopeStyle.None) return;
        // The angles depend only on the position and the frequencies: q and k of every layer share one computation.
        if (pos != _ropePos || theta != _ropeTheta)
        {
            for (int i = 0; i < theta.Length; i++)
            {
                float angle = pos * theta[i];
                _ropeCos[i] = MathF.Cos(angle);
                _ropeSin[i] = MathF.Sin(angle);
            }
            (_ropePos, _ropeTheta) = (pos, theta);
        }
        int headSize = Config.HeadSize, half = headSize / 2;
        ReadOnlySpan<float> cos = _ropeCos, sin = _ropeSin;
        for (int head = 0; head < vec.Length; head += headSize)
        {
            Span<float> v = vec.Slice(head, headSize);
            if (Config.Rope == RopeStyle.Adjacent)
                for (int i = 0; i < half; i++) Rotate(ref v[2 * i], ref v[2 * i + 1], cos[i], sin[i]);
            else
                for (int i = 0; i < half; i++) Rotate(ref v[i], ref v[i + half], cos[i], sin[i]);
        }
    }

    /// <summary>(a, b) = (a cos - b sin, a sin + b cos).</summary>
    private static void Rotate(ref float a, ref float b, float cos, float sin) =>
        (a, b) = (a * cos - b * sin, a * sin + b * cos);

    /// <summary>The model's normalisation: RMSNorm, or LayerNorm with <paramref name="bias"/>.</summary>
    private void Normalize(Span<float> output, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float[]? bias)
    {
        if (Config.Normalization == Normalization.RmsNorm) RmsNorm(output, x, weight, Config.RmsEpsilon);
        else LayerNorm(output, x, weight, bias, Config.RmsEpsilon);
    }

    /// <summary>out = weight * (x - mean) / sqrt(var + eps) + bias (no bias when it is empty).</summary>
    public static void LayerNorm(Span<float> output, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps)
    {
        float mean = 0;
        foreach (float v in x) mean += v;
        mean /= x.Length;
        float variance = 0;
        foreach (float v in x) variance += (v - mean) * (v - mean);
        float inv = 1.0f / MathF.Sqrt(variance / x.Length + eps);
        for (int i = 0; i < x.Length; i++)
            output[i] = weight[i] * ((x[i] - mean) * inv) + (bias.IsEmpty ? 0 : bias[i]);
    }

    /// <summary>out = weight * x / sqrt(mean(x²) + eps). The squares are summed in double, in order, as llama.cpp does:
    /// the same scale to the last bit keeps 8-bit activation rounding the same in both engines.</summary>
    public static void RmsNorm(Span<float> output, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps)
    {
        float mean = (float)(SumOfSquares(x) / x.Length);
        float scale = 1.0f / MathF.Sqrt(mean + eps);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= x.Length; i += 8)
                (Vector256.Create(x.Slice(i, 8)) * scale * Vector256.Create(weight.Slice(i, 8))).CopyTo(output.Slice(i, 8));
        for (; i < x.Length; i++)
            output[i] = x[i] * scale * weight[i];
    }

    /// <summary>Σ x², each square taken in float and summed in double (eight lanes of partial sums, then the rest).</summary>
    private static double SumOfSquares(ReadOnlySpan<float> x)
    {
        double sum = 0;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<double> low = default, high = default;
            for (; i + 8 <= x.Length; i += 8)
            {
                var v = Vector256.Create(x.Slice(i, 8));
                var (l, h) = Vector256.Widen(v * v);
                (low, high) = (low + l, high + h);
            }
            sum = Vector256.Sum(low + high);
        }
        for (; i < x.Length; i++) sum += x[i] * x[i];
        return sum;
    }

    /// <summary>In-place softmax, subtracting the maximum for stability.</summary>
    public static void Softmax(Span<float> x) => AttentionKernels.Softmax(x);

    /// <summary>gate = silu(gate) * up, where silu(g) = g * sigmoid(g).</summary>
    private static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up) => GatedActivation.SwiGlu(gate, up);

    /// <summary>x = gelu(x), tanh approximation.</summary>
    private static void Gelu(Span<float> x)
    {
        const float SqrtTwoOverPi = 0.7978845608f;
        for (int i = 0; i < x.Length; i++)
        {
            float g = x[i];
            x[i] = 0.5f * g * (1.0f + MathF.Tanh(SqrtTwoOverPi * (g + 0.044715f * g * g * g)));
        }
    }

    /// <summary>gate = gelu(gate) * up, gelu(g) = g/2 (1 + tanh(sqrt(2/pi) (g + 0.044715 g³))).</summary>
    private static void GeluGated(Span<float> gate, ReadOnlySpan<float> up)
    {
        const float SqrtTwoOverPi = 0.7978845608f;
        for (int i = 0; i < gate.Length; i++)
        {
            float g = gate[i];
            gate[i] = 0.5f * g * (1.0f + MathF.Tanh(SqrtTwoOverPi * (g + 0.044715f * g * g * g))) * up[i];
        }
    }

    /// <summary>x = cap * tanh(x / cap): keeps every value inside (-cap, cap), nearly unchanged when small.</summary>
    private static void Softcap(Span<float> x, float cap)
    {
        for (int i = 0; i < x.Length; i++) x[i] = cap * MathF.Tanh(x[i] / cap);
    }

    private static void Scale(Span<float> x, float a)
    {
        for (int i = 0; i < x.Length; i++) x[i] *= a;
    }

    private static void Add(Span<float> x, ReadOnlySpan<float> y)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= x.Length; i += 8)
                (Vector256.Create(x.Slice(i, 8)) + Vector256.Create(y.Slice(i, 8))).CopyTo(x.Slice(i, 8));
        for (; i < x.Length; i++) x[i] += y[i];
    }
}
