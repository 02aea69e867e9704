using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>The matrix products of a layer a LoRA pair can adapt, by llama.cpp's tensor names.</summary>
public enum LoraTarget
{
    /// <summary><c>attn_q</c>: Wq (q_dim, dim).</summary>
    AttnQ,
    /// <summary><c>attn_k</c>: Wk (kv_dim, dim).</summary>
    AttnK,
    /// <summary><c>attn_v</c>: Wv (kv_dim, dim).</summary>
    AttnV,
    /// <summary><c>attn_output</c>: Wo (dim, q_dim).</summary>
    AttnOutput,
    /// <summary><c>ffn_gate</c>: W1 (hidden_dim, dim).</summary>
    FfnGate,
    /// <summary><c>ffn_up</c>: W3 (hidden_dim, dim).</summary>
    FfnUp,
    /// <summary><c>ffn_down</c>: W2 (dim, hidden_dim).</summary>
    FfnDown,
}

/// <summary>One adapter file and the scale it is applied at (<c>--lora FILE</c> is scale 1).</summary>
/// <param name="Adapter">The adapter.</param>
/// <param name="Scale">llama.cpp's adapter scale (<c>--lora-scaled FILE SCALE</c>); 0 leaves the model as it is.</param>
public readonly record struct ScaledLora(LoraAdapter Adapter, float Scale);

/// <summary>
/// The LoRA adapters a model (or one processor, <see cref="Transformer.Lora"/>) runs with, resolved to its matrices:
/// for each adapted product y = W·x, the pairs of every adapter with their factors, so that the forward pass adds
/// y += f·B·(A·x) for each, in the order given, after the base product (<see cref="Apply"/>) — llama.cpp's
/// <c>build_lora_mm</c> — and for an adapted embedding x += f·B·A[:, token] (<see cref="ApplyEmbedding"/>). The base
/// weights stay as they are, mapped from the file; nothing of them is copied or changed. Adapters at scale 0 are left
/// out entirely, so a model with them computes the same bits as without. Row by row, so a row's result never depends
/// on the batch it runs in, nor on the adapters of the rows beside it.
/// </summary>
public sealed class LoraAdapters
{
    /// <summary>A pair at its factor: y += Factor·B·(A·x). A and B are also F32 views over pinned copies, so a block of
    /// rows runs through the matrix-product kernels (<see cref="MatMul"/>) like any base product.</summary>
    private sealed record Term(float[] A, float[] B, int Rank, int Inputs, int Outputs, float Factor)
    {
        private readonly byte[] _a = Pinned(A), _b = Pinned(B); // A's and B's bytes, pinned for the views

        public TensorView AView => TensorView.Pinned(GgmlType.F32, Rank, Inputs, _a);
        public TensorView BView => TensorView.Pinned(GgmlType.F32, Outputs, Rank, _b);

        private static byte[] Pinned(float[] m)
        {
            var pinned = GC.AllocateArray<byte>(m.Length * sizeof(float), pinned: true);
            System.Runtime.InteropServices.MemoryMarshal.AsBytes(m.AsSpan()).CopyTo(pinned);
            return pinned;
        }
    }

    private readonly Term[]?[][] _layers; // (layers, targets): the terms of each product, null when none
    private readonly Term[]? _output;     // the output head's (vocab, dim)
    private readonly Term[]? _embedding;  // the token embedding's: A (rank, vocab), B (dim, rank)
    [ThreadStatic] private static float[]? _down, _up;

    private LoraAdapters(LlamaWeights weights, Term[]?[][] layers, Term[]? output, Term[]? embedding, int pairs, byte[] fingerprint,
        IReadOnlyList<ScaledLora> sources)
    {
        Weights = weights;
        _layers = layers;
        _output = output;
        _embedding = embedding;
        PairCount = pairs;
        Fingerprint = fingerprint;
        Sources = sources;
    }

    /// <summary>The layer number <see cref="Apply"/> takes for the output head.</summary>
    internal const int OutputHead = -1;

    /// <summary>The weights these adapters were resolved against; they apply to processors of these weights only.</summary>
    public LlamaWeights Weights { get; }

    /// <summary>Every adapter given, in order, with its scale (those at scale 0 too, which add nothing).</summary>
    public IReadOnlyList<ScaledLora> Sources { get; }

    /// <summary>Pairs applied (over all adapters at a non-zero scale).</summary>
    public int PairCount { get; }

    /// <summary>
    /// SHA-256 over every adapter applied (at a non-zero scale), in order: its <see cref="LoraAdapter.ContentHash"/> and
    /// its scale. Two sets of adapters that change the model's outputs differently have different fingerprints; sets
    /// that change nothing (none, or all at scale 0) have the same. Part of <see cref="ModelIdentity"/>, so a KV cache
    /// saved under one set of adapters is not restored under another, and of the prompt cache's test for a slot's reuse.
    /// </summary>
    public byte[] Fingerprint { get; }

    /// <summary>The GGUF tensor name of a layer's product (<c>blk.3.attn_q.weight</c>).</summary>
    public static string TensorName(int layer, LoraTarget target) => $"blk.{layer}.{TargetName(target)}.weight";

    /// <summary>llama.cpp's short name of a target (<c>attn_q</c>, <c>ffn_down</c>...).</summary>
    public static string TargetName(LoraTarget target) => target switch
    {
        LoraTarget.AttnQ => "attn_q",
        LoraTarget.AttnK => "attn_k",
        LoraTarget.AttnV => "attn_v",
        LoraTarget.AttnOutput => "attn_output",
        LoraTarget.FfnGate => "ffn_gate",
        LoraTarget.FfnUp => "ffn_up",
        LoraTarget.FfnDown => "ffn_down",
        _ => throw new ArgumentOutOfRangeException(nameof(target)),
    };

    /// <summary>The target of a short name, or null when the name is not one.</summary>
    public static LoraTarget? ParseTarget(string name) =>
        Enum.GetValues<LoraTarget>().Cast<LoraTarget?>().FirstOrDefault(t => TargetName(t!.Value) == name);

    /// <summary>
    /// Resolves <paramref name="adapters"/> against a model, checking what llama.cpp checks: the adapter was made for
    /// the model's architecture, every adapted tensor exists in the model, and its pair's shapes fit it
    /// (A: rank × in, B: out × rank for a base of out × in).
    /// </summary>
    /// <param name="config">The model's shape.</param>
    /// <param name="weights">The model's weights (read for their shapes only).</param>
    /// <param name="architecture">The model's <c>general.architecture</c>.</param>
    /// <param name="adapters">The adapters and their scales, applied in this order.</param>
    /// <param name="tensorNames">The model file's tensor names, when it has them (a GGUF's): a pair for a tensor the file
    /// does not hold (a fused <c>attn_qkv</c> model's <c>attn_q</c>) is refused.</param>
    /// <exception cref="ArgumentException">An adapter for another architecture, a tensor the model lacks or cannot adapt,
    /// a shape that does not fit, or a scale that is not finite; the message names the file, tensor and shapes.</exception>
    public static LoraAdapters Create(LlamaConfig config, LlamaWeights weights, string architecture, IEnumerable<ScaledLora> adapters,
        IReadOnlySet<string>? tensorNames = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(adapters);
        var sources = adapters.ToArray();
        var layers = new List<Term>[config.Layers, Enum.GetValues<LoraTarget>().Length];
        var output = new List<Term>();
        var embedding = new List<Term>();
        int pairs = 0;
        using var fingerprint = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var (adapter, scale) in sources)
        {
            string file = adapter.Path ?? "LoRA adapter";
            if (!float.IsFinite(scale)) throw new ArgumentException($"{file}: LoRA scale {scale} is not a finite number");
            if (adapter.Architecture != architecture)
                throw new ArgumentException($"{file}: general.architecture is '{adapter.Architecture}' but the model is '{architecture}'; an adapter applies only to the architecture it was made for");
            foreach (var (name, pair) in adapter.Pairs)
            {
                var (layer, target) = Locate(name, config, file);
                if (tensorNames is not null && !tensorNames.Contains(name))
                    throw new ArgumentException($"{file}: tensor '{name}' is adapted but the model has no such tensor (is this the adapter's base model?)");
                if (layer == OutputHead && weights.TiedOutput)
                    throw new ArgumentException($"{file}: tensor 'output.weight' is adapted but the model ties its output head to token_embd.weight");
                if (layer == Embedding && weights.TiedOutput)
                    throw new ArgumentException($"{file}: tensor 'token_embd.weight' is adapted but the model ties its output head to it; ClockLM adapts the embedding of models with an output.weight of their own");
                // The embedding is a (vocab, dim) table read by token: as a product it maps a one-hot (vocab) to (dim).
                var (rows, cols) = layer switch
                {
                    OutputHead => (weights.Output.Rows, weights.Output.Cols),
                    Embedding => (weights.TokenEmbedding.Cols, weights.TokenEmbedding.Rows),
                    _ => (Matrix(weights.Layers[layer], target).Rows, Matrix(weights.Layers[layer], target).Cols),
                };
                if (rows == 0)
                    throw new ArgumentException($"{file}: tensor '{name}' is adapted but the model has no such matrix");
                if (pair.Inputs != cols || pair.Outputs != rows)
                    throw new ArgumentException(layer == Embedding
                        ? $"{file}: LoRA pair '{name}' maps {pair.Inputs} tokens to width {pair.Outputs} (lora_a [{pair.Rank}, {pair.Inputs}], lora_b [{pair.Rank}, {pair.Outputs}]) but the model's embedding has {cols} tokens of width {rows} (is this the adapter's base model?)"
                        : $"{file}: LoRA pair '{name}' maps {pair.Inputs} inputs to {pair.Outputs} outputs (lora_a [{pair.Inputs}, {pair.Rank}], lora_b [{pair.Rank}, {pair.Outputs}]) but the model's tensor is [{cols}, {rows}] (is this the adapter's base model?)");
                if (scale == 0) continue;
                var term = new Term(pair.A, pair.B, pair.Rank, pair.Inputs, pair.Outputs, adapter.Factor(scale, pair.Rank));
                (layer switch { OutputHead => output, Embedding => embedding, _ => layers[layer, (int)target] ??= [] }).Add(term);
                pairs++;
            }
            if (scale == 0) continue;
            fingerprint.AppendData(adapter.ContentHash);
            fingerprint.AppendData(BitConverter.GetBytes(scale));
        }
        var resolved = new Term[]?[config.Layers][];
        for (int l = 0; l < config.Layers; l++)
        {
            resolved[l] = new Term[]?[layers.GetLength(1)];
            for (int t = 0; t < layers.GetLength(1); t++) resolved[l][t] = layers[l, t]?.ToArray();
        }
        return new LoraAdapters(weights, resolved, output.Count > 0 ? output.ToArray() : null, embedding.Count > 0 ? embedding.ToArray() : null,
            pairs, fingerprint.GetHashAndReset(), sources);
    }

    /// <summary>True when <paramref name="a"/> and <paramref name="b"/> change a model's outputs alike: equal
    /// fingerprints, with null (no adapters) the same as adapters that apply nothing.</summary>
    public static bool SameEffect(LoraAdapters? a, LoraAdapters? b)
    {
        if (a is not { PairCount: > 0 }) return b is not { PairCount: > 0 };
        return b is { PairCount: > 0 } && a.Fingerprint.AsSpan().SequenceEqual(b.Fingerprint);
    }

    /// <summary>The layer number <see cref="Locate"/> gives the token embedding.</summary>
    private const int Embedding = -2;

    /// <summary>The layer (<see cref="OutputHead"/>, <see cref="Embedding"/>) and target of a base tensor name.</summary>
    private static (int Layer, LoraTarget Target) Locate(string name, LlamaConfig config, string file)
    {
        if (name == "output.weight") return (OutputHead, default);
        if (name == LoraAdapter.EmbeddingTensor) return (Embedding, default);
        string[] parts = name.Split('.');
        if (parts.Length == 4 && parts[0] == "blk" && parts[3] == "weight" && int.TryParse(parts[1], out int layer) && ParseTarget(parts[2]) is { } target)
        {
            if (layer < 0 || layer >= config.Layers)
                throw new ArgumentException($"{file}: tensor '{name}' is adapted but the model has layers 0..{config.Layers - 1}");
            return (layer, target);
        }
        throw new ArgumentException($"{file}: tensor '{name}' cannot be adapted; expected blk.N.T.weight with T one of {string.Join(", ", Enum.GetValues<LoraTarget>().Select(TargetName))}, output.weight or token_embd.weight");
    }

    /// <summary>The base matrix of a layer's target.</summary>
    public static Tensors.TensorView Matrix(LlamaLayerWeights w, LoraTarget target) => target switch
    {
        LoraTarget.AttnQ => w.Wq,
        LoraTarget.AttnK => w.Wk,
        LoraTarget.AttnV => w.Wv,
        LoraTarget.AttnOutput => w.Wo,
        LoraTarget.FfnGate => w.W1,
        LoraTarget.FfnUp => w.W3,
        LoraTarget.FfnDown => w.W2,
        _ => throw new ArgumentOutOfRangeException(nameof(target)),
    };

    /// <summary>True when some pair adapts this layer's product.</summary>
    internal bool Adapts(int layer, LoraTarget target) => _layers[layer][(int)target] is not null;

    /// <summary>Adds every pair of a layer's product (or the output head's, layer <see cref="OutputHead"/>) to its
    /// output: for rows [first, first + count) of <paramref name="input"/> (rows, in) and <paramref name="output"/>
    /// (rows, out), y += f·B·(A·x). Row by row, so a row's result does not depend on the rows beside it.</summary>
    internal void Apply(int layer, LoraTarget target, ReadOnlySpan<float> input, Span<float> output, int first, int count,
        WorkerPool? pool, KernelOptions kernels)
    {
        if ((layer == OutputHead ? _output : _layers[layer][(int)target]) is not { } terms) return;
        foreach (var t in terms)
        {
            // d = X·Aᵀ (count, rank), then u = d·Bᵀ (count, out), y += f·u: two small products, never the (out × in)
            // update itself. Each row's result is the kernels' one-row result, whatever the count.
            var down = _down is { } d && d.Length >= count * t.Rank ? d : _down = new float[Math.Max(count * t.Rank, 256)];
            var up = _up is { } u && u.Length >= count * t.Outputs ? u : _up = new float[Math.Max(count * t.Outputs, 256)];
            MatMul.Multiply(t.AView, input.Slice(first * t.Inputs, count * t.Inputs), down, count, pool, kernels);
            MatMul.Multiply(t.BView, down.AsSpan(0, count * t.Rank), up, count, pool, kernels);
            Span<float> y = output.Slice(first * t.Outputs, count * t.Outputs);
            for (int i = 0; i < y.Length; i++) y[i] += t.Factor * up[i];
        }
    }

    /// <summary>Adds every pair of the token embedding to the embedding <paramref name="x"/> (dim) of
    /// <paramref name="token"/>: x += f·B·A[:, token], as llama.cpp adds it, before any embedding scale.</summary>
    internal void ApplyEmbedding(int token, Span<float> x)
    {
        if (_embedding is not { } terms) return;
        foreach (var t in terms)
        {
            var down = _down is { } d && d.Length >= t.Rank ? d : _down = new float[Math.Max(t.Rank, 64)];
            for (int r = 0; r < t.Rank; r++) down[r] = t.A[r * t.Inputs + token]; // A·onehot(token): column token of A
            ReadOnlySpan<float> dr = down.AsSpan(0, t.Rank);
            for (int o = 0; o < t.Outputs; o++) x[o] += t.Factor * Dot(t.B.AsSpan(o * t.Rank, t.Rank), dr);
        }
    }

    // A plain float dot product, for the embedding's term: rank × dim operations per token.
    private static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float sum = 0;
        for (int i = 0; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }
}
