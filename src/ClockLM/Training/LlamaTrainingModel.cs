using ClockLM.Models;
using ClockLM.Nn;
using ClockLM.Tensors;
using ClockLM.Tokenizers;

namespace ClockLM.Training;

/// <summary>
/// A Llama-architecture model as a graph of differentiable operations, for training: the same computation as
/// <see cref="Transformer"/> (RMSNorm, RoPE on adjacent pairs, grouped-query causal attention, SwiGLU), run on a whole
/// batch of sequences at once. The output head is tied to the token embedding (the GGUF has no <c>output.weight</c>).
/// Every weight matrix is stored (out × in) row-major, as GGUF stores it.
/// </summary>
public sealed class LlamaTrainingModel
{
    /// <summary>Creates a model with freshly initialised weights: matrices ~ N(0, 0.02²), the two projections into the
    /// residual stream scaled by 1/√(2·layers), norms at 1.</summary>
    public LlamaTrainingModel(LlamaConfig config, int seed)
    {
        if (config.Validate() is { } problem) throw new ArgumentException($"model shape: {problem}", nameof(config));
        Config = config;
        var random = new Random(seed);
        const double std = 0.02;
        double residualStd = std / Math.Sqrt(2.0 * config.Layers);
        TokenEmbedding = Matrix(random, config.VocabSize, config.Dim, std);
        var layers = new LayerWeights[config.Layers];
        for (int l = 0; l < config.Layers; l++)
            layers[l] = new LayerWeights(
                AttnNorm: Ones(config.Dim),
                Wq: Matrix(random, config.Dim, config.Dim, std),
                Wk: Matrix(random, config.KvDim, config.Dim, std),
                Wv: Matrix(random, config.KvDim, config.Dim, std),
                Wo: Matrix(random, config.Dim, config.Dim, residualStd),
                FfnNorm: Ones(config.Dim),
                W1: Matrix(random, config.HiddenDim, config.Dim, std),
                W2: Matrix(random, config.Dim, config.HiddenDim, residualStd),
                W3: Matrix(random, config.HiddenDim, config.Dim, std));
        Layers = layers;
        FinalNorm = Ones(config.Dim);
    }

    /// <summary>The weights of one layer; matrices (out × in).</summary>
    public sealed record LayerWeights(
        Tensor<float> AttnNorm, // (dim)
        Tensor<float> Wq,       // (dim, dim)
        Tensor<float> Wk,       // (kv_dim, dim)
        Tensor<float> Wv,       // (kv_dim, dim)
        Tensor<float> Wo,       // (dim, dim)
        Tensor<float> FfnNorm,  // (dim)
        Tensor<float> W1,       // (hidden_dim, dim) gate
        Tensor<float> W2,       // (dim, hidden_dim) down
        Tensor<float> W3);      // (hidden_dim, dim) up

    /// <summary>The model's shape.</summary>
    public LlamaConfig Config { get; }

    /// <summary>(vocab, dim); also the output head.</summary>
    public Tensor<float> TokenEmbedding { get; }

    /// <summary>The layers' weights.</summary>
    public IReadOnlyList<LayerWeights> Layers { get; }

    /// <summary>(dim)</summary>
    public Tensor<float> FinalNorm { get; }

    /// <summary>Every trainable tensor with its GGUF name, in GGUF file order.</summary>
    public IEnumerable<(string Name, Tensor<float> Tensor)> NamedParameters()
    {
        yield return ("token_embd.weight", TokenEmbedding);
        for (int l = 0; l < Layers.Count; l++)
        {
            var w = Layers[l];
            string p = $"blk.{l}.";
            yield return (p + "attn_norm.weight", w.AttnNorm);
            yield return (p + "attn_q.weight", w.Wq);
            yield return (p + "attn_k.weight", w.Wk);
            yield return (p + "attn_v.weight", w.Wv);
            yield return (p + "attn_output.weight", w.Wo);
            yield return (p + "ffn_norm.weight", w.FfnNorm);
            yield return (p + "ffn_gate.weight", w.W1);
            yield return (p + "ffn_down.weight", w.W2);
            yield return (p + "ffn_up.weight", w.W3);
        }
        yield return ("output_norm.weight", FinalNorm);
    }

    /// <summary>Every trainable tensor, in GGUF file order.</summary>
    public IReadOnlyList<Tensor<float>> Parameters() => NamedParameters().Select(p => p.Tensor).ToList();

    /// <summary>The number of trainable values.</summary>
    public long ParameterCount => NamedParameters().Sum(p => (long)p.Tensor.Length);

    /// <summary>
    /// The forward pass over <paramref name="batch"/> sequences of <paramref name="seqLen"/> tokens
    /// (<paramref name="tokens"/> holds them one after another); returns logits (batch·seqLen × vocab), row b·seqLen + t
    /// predicting the token after position t of sequence b. With a <paramref name="compute"/> context every operation
    /// takes its fast path on the context's threads; without one, the plain operations run on the calling thread.
    /// </summary>
    public Tensor<float> Forward(int[] tokens, int batch, int seqLen, ComputeContext? compute = null)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (batch <= 0 || seqLen <= 0 || tokens.Length != batch * seqLen)
            throw new ArgumentException($"{tokens.Length} tokens are not {batch} sequences of {seqLen}", nameof(tokens));
        if (seqLen > Config.ContextLength)
            throw new ArgumentException($"sequence length {seqLen} exceeds the context length {Config.ContextLength}", nameof(seqLen));
        var c = Config;
        var x = Tensor<float>.Embedding(TokenEmbedding, tokens, compute);
        foreach (var w in Layers)
        {
            // Decode: normalise, project to q, k, v; rotate q and k by position.
            var h = x.RmsNorm(w.AttnNorm, c.RmsEpsilon, compute);
            var q = h.Linear(w.Wq, compute).Rope(c.HeadSize, seqLen, c.RopeBase, compute);
            var k = h.Linear(w.Wk, compute).Rope(c.HeadSize, seqLen, c.RopeBase, compute);
            var v = h.Linear(w.Wv, compute);
            // Execute and write back: attention, then the SwiGLU feed-forward network, each added into the residual stream.
            var attention = Tensor<float>.CausalSelfAttention(q, k, v, batch, seqLen, c.Heads, c.KvHeads, compute);
            x = x.Add(attention.Linear(w.Wo, compute), compute);
            h = x.RmsNorm(w.FfnNorm, c.RmsEpsilon, compute);
            x = x.Add(h.Linear(w.W1, compute).SwiGlu(h.Linear(w.W3, compute), compute).Linear(w.W2, compute), compute);
        }
        return x.RmsNorm(FinalNorm, c.RmsEpsilon, compute).Linear(TokenEmbedding, compute);
    }

    /// <summary>Mean next-token cross-entropy of <paramref name="inputs"/> predicting <paramref name="targets"/>.</summary>
    public Tensor<float> Loss(int[] inputs, int[] targets, int batch, int seqLen, ComputeContext? compute = null) =>
        Forward(inputs, batch, seqLen, compute).CrossEntropy(targets, compute);

    /// <summary>Writes the model as a llama-architecture GGUF (F32 or F16 matrices, F32 norms) with the tokenizer.</summary>
    public void ExportGguf(string path, string name, SentencePieceTokenizer tokenizer, GgmlType matrixType = GgmlType.F32)
    {
        if (tokenizer.VocabSize != Config.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} pieces but the model's vocabulary is {Config.VocabSize}", nameof(tokenizer));
        if (matrixType is not (GgmlType.F32 or GgmlType.F16))
            throw new ArgumentException($"export writes F32 or F16 matrices, not {matrixType}", nameof(matrixType));
        var byName = NamedParameters().ToDictionary(p => p.Name, p => p.Tensor);
        LlamaGgufExport.Write(path, name, Config, tokenizer, separateOutput: false, _ => matrixType, (tensor, row, destination) =>
        {
            var t = byName[tensor];
            int cols = t.Columns;
            t.Data.AsSpan(row * cols, cols).CopyTo(destination);
        });
    }

    private static Tensor<float> Matrix(Random random, int rows, int cols, double std)
    {
        var data = new float[rows * cols];
        for (int i = 0; i < data.Length; i++)
        {
            // Box–Muller
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            data[i] = (float)(std * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return new Tensor<float>([rows, cols], data, requiresGrad: true);
    }

    private static Tensor<float> Ones(int n)
    {
        var data = new float[n];
        Array.Fill(data, 1f);
        return new Tensor<float>([n], data, requiresGrad: true);
    }
}
