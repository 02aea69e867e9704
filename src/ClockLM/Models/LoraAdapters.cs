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
/// The LoRA adapters a model runs with, resolved to its matrices: for each adapted product y = W·x, the pairs of every
/// adapter with their factors, so that the forward pass adds y += f·B·(A·x) for each, in the order given, after the
/// base product (<see cref="Apply"/>) — llama.cpp's <c>build_lora_mm</c>. The base weights stay as they are, mapped
/// from the file; nothing of them is copied or changed. Adapters at scale 0 are left out entirely, so a model with them
/// computes the same bits as without. Row by row, so a row's result never depends on the batch it runs in.
/// </summary>
public sealed class LoraAdapters
{
    /// <summary>A pair at its factor: y += Factor·B·(A·x).</summary>
    private readonly record struct Term(float[] A, float[] B, int Rank, int Inputs, int Outputs, float Factor);

    private readonly Term[]?[][] _layers; // (layers, targets): the terms of each product, null when none
    private readonly Term[]? _output;     // the output head's (vocab, dim)
    [ThreadStatic] private static float[]? _down;

    private LoraAdapters(Term[]?[][] layers, Term[]? output, int pairs, byte[] fingerprint)
    {
        _layers = layers;
        _output = output;
        PairCount = pairs;
        Fingerprint = fingerprint;
    }

    /// <summary>Pairs applied (over all adapters at a non-zero scale).</summary>
    public int PairCount { get; }

    /// <summary>
    /// SHA-256 over every applied term in order (the tensor it adapts, its factor, rank and the bytes of A and B): two
    /// sets of adapters that change the model's outputs differently have different fingerprints. Part of
    /// <see cref="ModelIdentity"/>, so a KV cache saved under one set of adapters is not restored under another.
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
        var layers = new List<Term>[config.Layers, Enum.GetValues<LoraTarget>().Length];
        var output = new List<Term>();
        int pairs = 0;
        using var fingerprint = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var (adapter, scale) in adapters)
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
                var w = layer < 0 ? weights.Output : Matrix(weights.Layers[layer], target);
                if (layer < 0 && weights.TiedOutput)
                    throw new ArgumentException($"{file}: tensor 'output.weight' is adapted but the model ties its output head to token_embd.weight");
                if (w.Rows == 0)
                    throw new ArgumentException($"{file}: tensor '{name}' is adapted but the model has no such matrix");
                if (pair.Inputs != w.Cols || pair.Outputs != w.Rows)
                    throw new ArgumentException($"{file}: LoRA pair '{name}' maps {pair.Inputs} inputs to {pair.Outputs} outputs (lora_a [{pair.Inputs}, {pair.Rank}], lora_b [{pair.Rank}, {pair.Outputs}]) but the model's tensor is [{w.Cols}, {w.Rows}] (is this the adapter's base model?)");
                if (scale == 0) continue;
                var term = new Term(pair.A, pair.B, pair.Rank, pair.Inputs, pair.Outputs, adapter.Factor(scale, pair.Rank));
                (layer < 0 ? output : layers[layer, (int)target] ??= []).Add(term);
                pairs++;
                fingerprint.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
                fingerprint.AppendData(BitConverter.GetBytes(term.Factor));
                fingerprint.AppendData(BitConverter.GetBytes(term.Rank));
                fingerprint.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(term.A.AsSpan()));
                fingerprint.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(term.B.AsSpan()));
            }
        }
        var resolved = new Term[]?[config.Layers][];
        for (int l = 0; l < config.Layers; l++)
        {
            resolved[l] = new Term[]?[layers.GetLength(1)];
            for (int t = 0; t < layers.GetLength(1); t++) resolved[l][t] = layers[l, t]?.ToArray();
        }
        return new LoraAdapters(resolved, output.Count > 0 ? output.ToArray() : null, pairs, fingerprint.GetHashAndReset());
    }

    /// <summary>The layer (−1 for the output head) and target of a base tensor name.</summary>
    private static (int Layer, LoraTarget Target) Locate(string name, LlamaConfig config, string file)
    {
        if (name == "output.weight") return (-1, default);
        if (name == "token_embd.weight")
            throw new ArgumentException($"{file}: tensor 'token_embd.weight' is adapted; ClockLM applies LoRA to the layers' products and the output head, not to the embedding");
        string[] parts = name.Split('.');
        if (parts.Length == 4 && parts[0] == "blk" && parts[3] == "weight" && int.TryParse(parts[1], out int layer) && ParseTarget(parts[2]) is { } target)
        {
            if (layer < 0 || layer >= config.Layers)
                throw new ArgumentException($"{file}: tensor '{name}' is adapted but the model has layers 0..{config.Layers - 1}");
            return (layer, target);
        }
        throw new ArgumentException($"{file}: tensor '{name}' cannot be adapted; expected blk.N.T.weight with T one of {string.Join(", ", Enum.GetValues<LoraTarget>().Select(TargetName))}, or output.weight");
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

    /// <summary>Adds every pair of a layer's product to its output: for rows [0, rows) of <paramref name="input"/>
    /// (rows, in) and <paramref name="output"/> (rows, out), y += f·B·(A·x).</summary>
    internal void Apply(int layer, LoraTarget target, ReadOnlySpan<float> input, Span<float> output, int rows)
    {
        if (_layers[layer][(int)target] is { } terms) AddTerms(terms, input, output, rows);
    }

    /// <summary>Adds every pair of the output head to the logits of rows [0, rows).</summary>
    internal void ApplyOutput(ReadOnlySpan<float> input, Span<float> logits, int rows)
    {
        if (_output is { } terms) AddTerms(terms, input, logits, rows);
    }

    private static void AddTerms(Term[] terms, ReadOnlySpan<float> input, Span<float> output, int rows)
    {
        foreach (var t in terms)
        {
            var down = _down is { } d && d.Length >= t.Rank ? d : _down = new float[Math.Max(t.Rank, 64)];
            for (int i = 0; i < rows; i++)
            {
                ReadOnlySpan<float> x = input.Slice(i * t.Inputs, t.Inputs);
                Span<float> y = output.Slice(i * t.Outputs, t.Outputs);
                // d = A·x (rank), then y_o += f·(B·d)_o: two small products, never the (out × in) update itself.
                for (int r = 0; r < t.Rank; r++) down[r] = Dot(t.A.AsSpan(r * t.Inputs, t.Inputs), x);
                ReadOnlySpan<float> dr = down.AsSpan(0, t.Rank);
                for (int o = 0; o < t.Outputs; o++) y[o] += t.Factor * Dot(t.B.AsSpan(o * t.Rank, t.Rank), dr);
            }
        }
    }

    // A plain float dot product: the adapter's products are rank × (in + out) per row, small beside the base's.
    private static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float sum = 0;
        for (int i = 0; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }
}
