using System.Numerics;
using ClockLM.Models;
using ClockLM.Nn;

namespace ClockLM.Training;

/// <summary>
/// A frozen Llama-architecture base model with trainable LoRA pairs on chosen products, as a graph of differentiable
/// operations: the computation of <see cref="LlamaTrainingModel"/> (RMSNorm, RoPE on adjacent pairs or on the heads'
/// halves, grouped-query causal attention, SwiGLU; q/k/v biases when the base has them, as Qwen 2 does) where every
/// adapted product W·x becomes W·x + (alpha/rank)·B·(A·x) — PEFT's LoRA, and what
/// ClockLM's and llama.cpp's inference compute for the written adapter at scale 1. Only A and B get gradients; the
/// base's tensors never change. A starts uniform in ±1/√in (PEFT's Kaiming-uniform) and B at zero, so training starts
/// from the base model's exact outputs.
/// </summary>
/// <typeparam name="T">float for training; double for gradient checks.</typeparam>
public sealed class LoraTrainingModel<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly IReadOnlyDictionary<string, Tensor<T>> _base; // GGUF name → frozen tensor (matrices out × in)

    /// <summary>Creates LoRA pairs of <paramref name="rank"/> for <paramref name="targets"/> of every layer (and the
    /// output head when <paramref name="adaptOutput"/>) over frozen base tensors named as in GGUF.</summary>
    /// <exception cref="ArgumentException">The base lacks a tensor the graph needs, or rank/alpha are out of range.</exception>
    public LoraTrainingModel(LlamaConfig config, IReadOnlyDictionary<string, Tensor<T>> baseTensors, int rank, float alpha,
        IReadOnlyList<LoraTarget> targets, bool adaptOutput, int seed)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(baseTensors);
        if (rank <= 0) throw new ArgumentException($"LoRA rank {rank} must be positive", nameof(rank));
        if (!(alpha > 0) || !float.IsFinite(alpha)) throw new ArgumentException($"LoRA alpha {alpha} must be a positive number", nameof(alpha));
        if (targets.Count == 0 && !adaptOutput) throw new ArgumentException("LoRA needs at least one target", nameof(targets));
        Config = config;
        _base = baseTensors;
        Rank = rank;
        Alpha = alpha;
        Factor = T.CreateChecked(alpha / rank);
        var random = new Random(seed);
        var pairs = new List<(string, Tensor<T>, Tensor<T>)>();
        void Add(string name)
        {
            var w = Base(name);
            int outputs = w.Shape[0], inputs = w.Shape[1];
            double bound = 1.0 / Math.Sqrt(inputs);
            var a = new T[rank * inputs];
            for (int i = 0; i < a.Length; i++) a[i] = T.CreateChecked((random.NextDouble() * 2 - 1) * bound);
            pairs.Add((name, new Tensor<T>([rank, inputs], a, requiresGrad: true), Tensor<T>.Zeros([outputs, rank], requiresGrad: true)));
        }
        for (int l = 0; l < config.Layers; l++)
            foreach (var target in targets) Add(LoraAdapters.TensorName(l, target));
        if (adaptOutput) Add("output.weight");
        Pairs = pairs;
        _byName = pairs.ToDictionary(p => p.Item1, p => (p.Item2, p.Item3));
    }

    private readonly Dictionary<string, (Tensor<T> A, Tensor<T> B)> _byName;

    /// <summary>The base model's shape.</summary>
    public LlamaConfig Config { get; }

    /// <summary>Rows of every A.</summary>
    public int Rank { get; }

    /// <summary>PEFT's lora_alpha; the update is scaled by alpha / rank.</summary>
    public float Alpha { get; }

    /// <summary>alpha / rank.</summary>
    public T Factor { get; }

    /// <summary>The trainable pairs by base tensor name: A (rank × in), B (out × rank).</summary>
    public IReadOnlyList<(string Name, Tensor<T> A, Tensor<T> B)> Pairs { get; }

    /// <summary>Every trainable tensor: A then B of each pair, in <see cref="Pairs"/> order.</summary>
    public IReadOnlyList<Tensor<T>> Parameters() => Pairs.SelectMany(p => new[] { p.A, p.B }).ToList();

    /// <summary>Trainable values.</summary>
    public long ParameterCount => Pairs.Sum(p => (long)p.A.Length + p.B.Length);

    private Tensor<T> Base(string name) =>
        _base.TryGetValue(name, out var t) ? t : throw new ArgumentException($"the base model has no tensor '{name}'");

    /// <summary>x plus the base's bias <paramref name="name"/> on every row, or x when the base has no such bias.</summary>
    private Tensor<T> Bias(Tensor<T> x, string name) => _base.TryGetValue(name, out var bias) ? x.Add(bias) : x;

    /// <summary>x·Wᵀ, plus (alpha/rank)·(x·Aᵀ)·Bᵀ when the product is adapted.</summary>
    private Tensor<T> Product(Tensor<T> x, string name)
    {
        var y = x.Linear(Base(name));
        return _byName.TryGetValue(name, out var pair) ? y + x.Linear(pair.A).Linear(pair.B).Scale(Factor) : y;
    }

    /// <summary>The forward pass over <paramref name="batch"/> sequences of <paramref name="seqLen"/> tokens; logits
    /// (batch·seqLen × vocab), row b·seqLen + t predicting the token after position t of sequence b.</summary>
    public Tensor<T> Forward(int[] tokens, int batch, int seqLen)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (batch <= 0 || seqLen <= 0 || tokens.Length != batch * seqLen)
            throw new ArgumentException($"{tokens.Length} tokens are not {batch} sequences of {seqLen}", nameof(tokens));
        var c = Config;
        var x = Tensor<T>.Embedding(Base("token_embd.weight"), tokens);
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            var h = x.RmsNorm(Base(p + "attn_norm.weight"), c.RmsEpsilon);
            // (W·h + lora) + bias, then RoPE: the inference's order.
            var q = Bias(Product(h, p + "attn_q.weight"), p + "attn_q.bias").Rope(c.HeadSize, seqLen, c.RopeBase, style: c.Rope);
            var k = Bias(Product(h, p + "attn_k.weight"), p + "attn_k.bias").Rope(c.HeadSize, seqLen, c.RopeBase, style: c.Rope);
            var v = Bias(Product(h, p + "attn_v.weight"), p + "attn_v.bias");
            var attention = Tensor<T>.CausalSelfAttention(q, k, v, batch, seqLen, c.Heads, c.KvHeads);
            x = x + Product(attention, p + "attn_output.weight");
            h = x.RmsNorm(Base(p + "ffn_norm.weight"), c.RmsEpsilon);
            x = x + Product(Product(h, p + "ffn_gate.weight").SwiGlu(Product(h, p + "ffn_up.weight")), p + "ffn_down.weight");
        }
        string head = _base.ContainsKey("output.weight") ? "output.weight" : "token_embd.weight";
        return Product(x.RmsNorm(Base("output_norm.weight"), c.RmsEpsilon), head);
    }

    /// <summary>Mean next-token cross-entropy of <paramref name="inputs"/> predicting <paramref name="targets"/>.</summary>
    public Tensor<T> Loss(int[] inputs, int[] targets, int batch, int seqLen) => Forward(inputs, batch, seqLen).CrossEntropy(targets);

    /// <summary>The trained pairs as a llama.cpp LoRA adapter for <paramref name="architecture"/> (alpha as trained, so
    /// scale 1 reproduces this model).</summary>
    public LoraAdapter ToAdapter(string architecture) => new(architecture, Alpha, Pairs.ToDictionary(
        p => p.Name,
        p => new LoraPair(p.A.Data.Select(float.CreateChecked).ToArray(), p.B.Data.Select(float.CreateChecked).ToArray(), Rank, p.A.Shape[1], p.B.Shape[0])));

    /// <summary>
    /// The frozen base tensors of <paramref name="model"/>, dequantized to <typeparamref name="T"/> (a quantized base
    /// trains on its dequantized values: fine for small models, (vocab + layers·12·dim²)·sizeof(T) bytes of memory).
    /// </summary>
    /// <exception cref="ArgumentException">The model is not one the training graph computes exactly.</exception>
    public static Dictionary<string, Tensor<T>> BaseTensors(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (Unsupported(model) is { } reason)
            throw new ArgumentException($"{model.Path}: finetune trains Llama-architecture models (RMSNorm, RoPE, SwiGLU, biases on q/k/v only: Llama, Mistral, Qwen 2); this one has {reason}");
        var c = model.Config;
        var w = model.Weights;
        var tensors = new Dictionary<string, Tensor<T>>(StringComparer.Ordinal);
        void Matrix(string name, Tensors.TensorView view)
        {
            var row = new float[view.Cols];
            var data = new T[(long)view.Rows * view.Cols];
            for (int r = 0; r < view.Rows; r++)
            {
                view.DequantizeRow(r, row);
                for (int i = 0; i < row.Length; i++) data[(long)r * view.Cols + i] = T.CreateChecked(row[i]);
            }
            tensors[name] = new Tensor<T>([view.Rows, view.Cols], data);
        }
        void Vector(string name, float[] values) => tensors[name] = new Tensor<T>([values.Length], values.Select(T.CreateChecked).ToArray());
        Matrix("token_embd.weight", w.TokenEmbedding);
        for (int l = 0; l < c.Layers; l++)
        {
            var layer = w.Layers[l];
            string p = $"blk.{l}.";
            Vector(p + "attn_norm.weight", layer.AttnNorm);
            Vector(p + "ffn_norm.weight", layer.FfnNorm);
            if (layer.BiasQ is { } bq) Vector(p + "attn_q.bias", bq);
            if (layer.BiasK is { } bk) Vector(p + "attn_k.bias", bk);
            if (layer.BiasV is { } bv) Vector(p + "attn_v.bias", bv);
            foreach (var target in Enum.GetValues<LoraTarget>()) Matrix(LoraAdapters.TensorName(l, target), LoraAdapters.Matrix(layer, target));
        }
        Vector("output_norm.weight", w.FinalNorm);
        if (!w.TiedOutput) Matrix("output.weight", w.Output);
        return tensors;
    }

    /// <summary>What of <paramref name="model"/> the training graph does not compute, or null when it computes all.</summary>
    public static string? Unsupported(Model model)
    {
        var c = model.Config;
        var w = model.Weights;
        if (c.Normalization != Normalization.RmsNorm) return "LayerNorm";
        if (c.Rope is not (RopeStyle.Adjacent or RopeStyle.Halves)) return $"{c.Rope} RoPE";
        if (c.FeedForward != FeedForward.SwiGlu) return $"a {c.FeedForward} feed-forward network";
        if (c.HeadSize * c.Heads != c.Dim) return "heads wider than dim / heads";
        if (c.EmbeddingScale != 1 || c.AttentionScale is not null || c.AttentionSoftcap != 0 || c.FinalSoftcap != 0) return "scaled embeddings, attention or soft-caps";
        if (c.SlidingWindow != 0) return "sliding-window attention";
        if (w.PositionEmbedding is not null || w.RopeFrequencyFactors is not null) return "learned positions or RoPE frequency factors";
        foreach (var layer in w.Layers)
            if (layer.BiasO is not null || layer.QNorm is not null || layer.KNorm is not null || layer.PostAttnNorm is not null
                || layer.PostFfnNorm is not null || layer.BiasUp is not null || layer.BiasDown is not null || layer.AttnNormBias is not null)
                return "biases beyond q/k/v or extra norms";
        return null;
    }
}
