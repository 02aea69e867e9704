using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Bench.Clock;

/// <summary>
/// The forward pass as it was before the clock drove it (no observer or hook checks), kept as the overhead benchmark's baseline.
/// It uses the same kernels as <see cref="Transformer"/> (attention, softmax, SwiGLU, RoPE angles once per token), so
/// the two differ only by the clock machinery.
/// 
/// The Llama forward pass, one token at a time, as a processor runs instructions: the token's embedding is
/// fetched into the residual stream, then every layer runs as one clock cycle of five stages
/// (fetch, decode, execute, memory, write-back), and the output head commits the logits.
/// Reads like llama2.c's run.c; the speed lives in <see cref="MatVec"/>.
/// </summary>
public sealed class PlainTransformer
{
    private readonly float[] _x;       // residual stream (dim)
    private readonly float[] _xb;      // normalised input / attention output (dim)
    private readonly float[] _xb2;     // projection output (dim)
    private readonly float[] _q;       // query (dim)
    private readonly float[] _k;       // key of this position (kv_dim)
    private readonly float[] _v;       // value of this position (kv_dim)
    private readonly float[] _hb;      // feed-forward gate (hidden_dim)
    private readonly float[] _hb2;     // feed-forward up (hidden_dim)
    private readonly float[] _att;     // attention scores of one head (context)
    private readonly float[] _logits;  // output (vocab)
    private readonly float[] _ropeFrequencies; // (head_size / 2)
    private readonly float[] _ropeCos, _ropeSin; // cos and sin of pos * theta_i for the token in flight (head_size / 2)

    private readonly WorkerPool? _pool;

    /// <summary>Creates a processor for <paramref name="weights"/> with a KV cache of <paramref name="contextLength"/> positions.
    /// Matrix-vector products are split across <paramref name="pool"/>'s threads when one is given.</summary>
    public PlainTransformer(LlamaConfig config, LlamaWeights weights, int contextLength, WorkerPool? pool = null)
    {
        Config = config;
        _pool = pool;
        Weights = weights;
        Cache = new KvCache(config, contextLength);
        _x = new float[config.Dim];
        _xb = new float[config.Dim];
        _xb2 = new float[config.Dim];
        _q = new float[config.Dim];
        _k = new float[config.KvDim];
        _v = new float[config.KvDim];
        _hb = new float[config.HiddenDim];
        _hb2 = new float[config.HiddenDim];
        _att = new float[contextLength];
        _logits = new float[config.VocabSize];
        _ropeFrequencies = new float[config.HeadSize / 2];
        _ropeCos = new float[config.HeadSize / 2];
        _ropeSin = new float[config.HeadSize / 2];
        // theta_i = base^(-2i / head_size)
        for (int i = 0; i < _ropeFrequencies.Length; i++)
            _ropeFrequencies[i] = 1.0f / MathF.Pow(config.RopeBase, 2 * i / (float)config.HeadSize);
    }

    public LlamaConfig Config { get; }
    public LlamaWeights Weights { get; }
    public KvCache Cache { get; }

    /// <summary>Positions the KV cache holds.</summary>
    public int ContextLength => Cache.ContextLength;

    /// <summary>The residual stream after the last <see cref="Forward"/>.</summary>
    public ReadOnlySpan<float> Residual => _x;

    /// <summary>Runs token <paramref name="token"/> at position <paramref name="pos"/> and returns the logits (vocab).
    /// The span is overwritten by the next call.</summary>
    public ReadOnlySpan<float> Forward(int token, int pos)
    {
        Run(token, pos, computeLogits: true);
        return _logits;
    }

    /// <summary>Evaluates a prompt: tokens at positions startPos, startPos+1, … and returns the logits of the last one.</summary>
    public ReadOnlySpan<float> Evaluate(ReadOnlySpan<int> tokens, int startPos)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to evaluate", nameof(tokens));
        for (int i = 0; i < tokens.Length; i++)
            Run(tokens[i], startPos + i, computeLogits: i == tokens.Length - 1);
        return _logits;
    }

    private void Run(int token, int pos, bool computeLogits)
    {
        if ((uint)token >= (uint)Config.VocabSize)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary (0..{Config.VocabSize - 1})");
        if ((uint)pos >= (uint)ContextLength)
            throw new ArgumentOutOfRangeException(nameof(pos), pos, $"position outside the context (0..{ContextLength - 1})");

        // Instruction fetch: the token's embedding row becomes the residual stream.
        Weights.TokenEmbedding.DequantizeRow(token, _x);
        // The RoPE angles of this position, shared by every layer.
        for (int i = 0; i < _ropeFrequencies.Length; i++)
        {
            float angle = pos * _ropeFrequencies[i];
            _ropeCos[i] = MathF.Cos(angle);
            _ropeSin[i] = MathF.Sin(angle);
        }

        for (int layer = 0; layer < Config.Layers; layer++)
            Cycle(layer, pos);

        if (!computeLogits) return;
        // Commit: final norm, then the output head turns the residual stream into logits.
        RmsNorm(_xb, _x, Weights.FinalNorm, Config.RmsEpsilon);
        MatMul(Weights.Output, _xb, _logits);
    }

    /// <summary>One clock cycle: layer <paramref name="layer"/> at position <paramref name="pos"/>.</summary>
    private void Cycle(int layer, int pos)
    {
        // Fetch: this layer's weights (views into the mapped file; the matmuls below stream them in).
        LlamaLayerWeights w = Weights.Layers[layer];

        // Decode: normalise the residual stream, project to q, k, v, rotate q and k by position.
        RmsNorm(_xb, _x, w.AttnNorm, Config.RmsEpsilon);
        MatMul(w.Wq, _xb, _q);
        MatMul(w.Wk, _xb, _k);
        MatMul(w.Wv, _xb, _v);
        Rope(_q, pos);
        Rope(_k, pos);

        // Memory: store this position's key and value; attention reads back positions 0..pos.
        _k.CopyTo(Cache.Key(layer, pos));
        _v.CopyTo(Cache.Value(layer, pos));

        // Execute: attention over the cache, its output projection added into the residual stream,
        // then the SwiGLU feed-forward network: w2(silu(w1 x) * w3 x).
        Attention(layer, pos, _xb);
        MatMul(w.Wo, _xb, _xb2);
        Add(_x, _xb2);
        RmsNorm(_xb, _x, w.FfnNorm, Config.RmsEpsilon);
        MatMul(w.W1, _xb, _hb);
        MatMul(w.W3, _xb, _hb2);
        SwiGlu(_hb, _hb2);
        MatMul(w.W2, _hb, _xb);

        // Write-back: the feed-forward output is added into the residual stream.
        Add(_x, _xb);
    }

    /// <summary>y = W x, on the pool when there is one.</summary>
    private void MatMul(in TensorView w, ReadOnlySpan<float> x, Span<float> y)
    {
        if (_pool is null) MatVec.Multiply(w, x, y);
        else MatVec.Multiply(w, x, y, _pool);
    }

    /// <summary>Multi-head attention of the current query over cached keys/values 0..pos; output (dim) into <paramref name="output"/>.</summary>
    private void Attention(int layer, int pos, Span<float> output)
    {
        int headSize = Config.HeadSize, kvDim = Config.KvDim;
        float scale = 1.0f / MathF.Sqrt(headSize);
        ReadOnlySpan<float> keys = Cache.Keys(layer, pos + 1);
        ReadOnlySpan<float> values = Cache.Values(layer, pos + 1);
        Span<float> att = _att.AsSpan(0, pos + 1);
        for (int h = 0; h < Config.Heads; h++)
        {
            // Query head h reads key/value head h / group (grouped-query attention).
            int kvOffset = h / Config.KvGroup * headSize;
            ReadOnlySpan<float> q = _q.AsSpan(h * headSize, headSize);
            AttentionKernels.Scores(q, keys[kvOffset..], kvDim, scale, att);
            Softmax(att);
            AttentionKernels.WeightedSum(att, values[kvOffset..], kvDim, output.Slice(h * headSize, headSize));
        }
    }

    /// <summary>RoPE: rotates each (even, odd) pair of every head by pos * theta_i.</summary>
    private void Rope(Span<float> vec, int pos)
    {
        for (int i = 0; i < vec.Length; i += 2)
        {
            float cos = _ropeCos[(i % Config.HeadSize) / 2], sin = _ropeSin[(i % Config.HeadSize) / 2];
            float a = vec[i], b = vec[i + 1];
            vec[i] = a * cos - b * sin;
            vec[i + 1] = a * sin + b * cos;
        }
    }

    /// <summary>out = weight * x / sqrt(mean(x²) + eps).</summary>
    public static void RmsNorm(Span<float> output, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps)
    {
        float ss = MatVec.Dot(x, x) / x.Length;
        float inv = 1.0f / MathF.Sqrt(ss + eps);
        for (int i = 0; i < x.Length; i++)
            output[i] = weight[i] * (inv * x[i]);
    }

    /// <summary>In-place softmax, subtracting the maximum for stability.</summary>
    public static void Softmax(Span<float> x) => AttentionKernels.Softmax(x);

    /// <summary>gate = silu(gate) * up, where silu(g) = g * sigmoid(g).</summary>
    private static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up) => GatedActivation.SwiGlu(gate, up);

    private static void Add(Span<float> x, ReadOnlySpan<float> y)
    {
        for (int i = 0; i < x.Length; i++) x[i] += y[i];
    }
}
