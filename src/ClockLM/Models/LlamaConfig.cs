namespace ClockLM.Models;

/// <summary>How RoPE pairs the elements of a head it rotates together.</summary>
public enum RopeStyle
{
    /// <summary>Adjacent pairs (2i, 2i+1): Llama, Mistral (llama.cpp's normal RoPE).</summary>
    Adjacent,

    /// <summary>Element i with element i + head_size/2, the two halves of the head: Qwen, Phi-3 (llama.cpp's NEOX RoPE).</summary>
    Halves,

    /// <summary>No rotation: positions come from learned position embeddings (GPT-2).</summary>
    None,
}

/// <summary>How the residual stream is normalised before attention, the feed-forward network and the output head.</summary>
public enum Normalization
{
    /// <summary>w x / sqrt(mean(x²) + eps): Llama and most families since.</summary>
    RmsNorm,

    /// <summary>w (x - mean) / sqrt(var + eps) + b: GPT-2.</summary>
    LayerNorm,
}

/// <summary>The feed-forward network's activation: down(act(gate x) * up x).</summary>
public enum FeedForward
{
    /// <summary>act = silu(g) = g sigmoid(g): Llama, Qwen, Phi-3.</summary>
    SwiGlu,

    /// <summary>act = gelu(g), tanh approximation: Gemma.</summary>
    GeluGated,

    /// <summary>No gate: down(gelu(up x)), with biases when the model has them (GPT-2).</summary>
    Gelu,
}

/// <summary>Hyper-parameters of a Llama-architecture model.</summary>
/// <param name="Dim">Width of the residual stream (embedding length).</param>
/// <param name="HiddenDim">Width of the feed-forward layer.</param>
/// <param name="Layers">Number of transformer layers: clock cycles per token.</param>
/// <param name="Heads">Query heads.</param>
/// <param name="KvHeads">Key/value heads (fewer than <paramref name="Heads"/> for grouped-query attention).</param>
/// <param name="VocabSize">Vocabulary size.</param>
/// <param name="ContextLength">Longest sequence the model was trained for.</param>
/// <param name="RmsEpsilon">Epsilon inside RMSNorm (or LayerNorm).</param>
/// <param name="RopeBase">RoPE base frequency (10000 for Llama 2).</param>
/// <remarks>The init-only properties describe how other families differ from Llama; their defaults are Llama's.</remarks>
public sealed record LlamaConfig(
    int Dim,
    int HiddenDim,
    int Layers,
    int Heads,
    int KvHeads,
    int VocabSize,
    int ContextLength,
    float RmsEpsilon = 1e-5f,
    float RopeBase = 10000f)
{
    /// <summary>Width of one attention head when it is not dim / heads (Qwen 3's <c>attention.key_length</c>); null otherwise.</summary>
    public int? HeadDim { get; init; }

    /// <summary>How RoPE pairs elements: adjacent (Llama) or the two halves of a head (Qwen, Phi-3).</summary>
    public RopeStyle Rope { get; init; } = RopeStyle.Adjacent;

    /// <summary>RMSNorm (Llama) or LayerNorm with bias (GPT-2).</summary>
    public Normalization Normalization { get; init; } = Normalization.RmsNorm;

    /// <summary>The feed-forward activation.</summary>
    public FeedForward FeedForward { get; init; } = FeedForward.SwiGlu;

    /// <summary>Factor on the token embedding as it enters the residual stream (sqrt(dim) for Gemma, 1 otherwise).</summary>
    public float EmbeddingScale { get; init; } = 1f;

    /// <summary>Factor on q · k before the softmax; 1 / sqrt(head_size) when null.</summary>
    public float? AttentionScale { get; init; }

    /// <summary>Attention scores pass through cap * tanh(score / cap) when positive (Gemma 2's attn_logit_softcapping).</summary>
    public float AttentionSoftcap { get; init; }

    /// <summary>Logits pass through cap * tanh(logit / cap) when positive (Gemma 2's final_logit_softcapping).</summary>
    public float FinalSoftcap { get; init; }

    /// <summary>Positions a sliding-window layer attends to (the current one and the window - 1 before it); 0 for none.</summary>
    public int SlidingWindow { get; init; }

    /// <summary>Which layers slide: layer l does when l % pattern &lt; pattern - 1 (2 for Gemma 2: every other layer;
    /// 6 for Gemma 3: five local layers, then a global one); 1 makes every layer slide.</summary>
    public int SlidingWindowPattern { get; init; } = 1;

    /// <summary>RoPE base of sliding-window layers (Gemma 3's local layers use 10000); <see cref="RopeBase"/> when null.</summary>
    public float? RopeBaseSliding { get; init; }

    /// <summary>True when layer <paramref name="layer"/> attends only to the last <see cref="SlidingWindow"/> positions.</summary>
    public bool IsSliding(int layer) => SlidingWindow > 0 && (SlidingWindowPattern <= 1 || layer % SlidingWindowPattern < SlidingWindowPattern - 1);

    /// <summary>Width of one attention head.</summary>
    public int HeadSize => HeadDim ?? Dim / Heads;

    /// <summary>Width of all query heads together (dim, unless <see cref="HeadDim"/> says otherwise).</summary>
    public int QDim => Heads * HeadSize;

    /// <summary>Width of all key (or value) heads together.</summary>
    public int KvDim => KvHeads * HeadSize;

    /// <summary>Query heads that share one key/value head.</summary>
    public int KvGroup => Heads / KvHeads;

    /// <summary>Checks the shape is self-consistent; returns a description of the first problem or null.</summary>
    public string? Validate()
    {
        if (Dim <= 0 || HiddenDim <= 0 || Layers <= 0 || Heads <= 0 || KvHeads <= 0 || VocabSize <= 0 || ContextLength <= 0)
            return $"every dimension must be positive (dim {Dim}, ffn {HiddenDim}, layers {Layers}, heads {Heads}, kv heads {KvHeads}, vocab {VocabSize}, context {ContextLength})";
        if (HeadDim is <= 0) return $"head size {HeadDim} must be positive";
        if (HeadDim is null && Dim % Heads != 0) return $"dim {Dim} is not a multiple of the head count {Heads}";
        if (Heads % KvHeads != 0) return $"head count {Heads} is not a multiple of the KV head count {KvHeads}";
        if (HeadSize % 2 != 0) return $"head size {HeadSize} is odd; RoPE rotates pairs";
        if (Layers > 1024 || Dim > 1 << 16 || HiddenDim > 1 << 18 || VocabSize > 1 << 22 || ContextLength > 1 << 22)
            return "a dimension is implausibly large";
        return null;
    }
}
