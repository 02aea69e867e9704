using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>The weights of one transformer layer (one clock cycle). Shapes are (rows, cols) = (out, in).</summary>
public sealed class LlamaLayerWeights
{
    public required float[] AttnNorm { get; init; }   // (dim)
    public required TensorView Wq { get; init; }      // (dim, dim)
    public required TensorView Wk { get; init; }      // (kv_dim, dim)
    public required TensorView Wv { get; init; }      // (kv_dim, dim)
    public required TensorView Wo { get; init; }      // (dim, dim)
    public required float[] FfnNorm { get; init; }    // (dim)
    public required TensorView W1 { get; init; }      // gate (hidden_dim, dim); default (empty) for FeedForward.Gelu
    public required TensorView W2 { get; init; }      // down (dim, hidden_dim)
    public required TensorView W3 { get; init; }      // up (hidden_dim, dim)

    // Optional parts of other families; null for Llama.
    public float[]? BiasQ { get; init; }              // (q_dim) Qwen 2
    public float[]? BiasK { get; init; }              // (kv_dim) Qwen 2
    public float[]? BiasV { get; init; }              // (kv_dim) Qwen 2
    public float[]? QNorm { get; init; }              // (head_size) RMSNorm of every query head, Qwen 3
    public float[]? KNorm { get; init; }              // (head_size) RMSNorm of every key head, Qwen 3, Gemma 3
    public float[]? AttnNormBias { get; init; }       // (dim) LayerNorm bias, GPT-2
    public float[]? BiasO { get; init; }              // (dim) GPT-2
    public float[]? FfnNormBias { get; init; }        // (dim) LayerNorm bias, GPT-2
    public float[]? BiasUp { get; init; }             // (hidden_dim) GPT-2
    public float[]? BiasDown { get; init; }           // (dim) GPT-2
    public float[]? PostAttnNorm { get; init; }       // (dim) RMSNorm of the attention output, Gemma
    public float[]? PostFfnNorm { get; init; }        // (dim) RMSNorm of the feed-forward output, Gemma

    /// <summary>Bytes of weights this layer reads per token: what the fetch stage brings in.</summary>
    public long ByteCount => Wq.ByteCount + Wk.ByteCount + Wv.ByteCount + Wo.ByteCount
        + W1.ByteCount + W2.ByteCount + W3.ByteCount + 4L * (AttnNorm.Length + FfnNorm.Length)
        + 4L * (Length(BiasQ) + Length(BiasK) + Length(BiasV) + Length(QNorm) + Length(KNorm) + Length(PostAttnNorm) + Length(PostFfnNorm)
            + Length(AttnNormBias) + Length(BiasO) + Length(FfnNormBias) + Length(BiasUp) + Length(BiasDown));

    private static long Length(float[]? vector) => vector?.Length ?? 0;
}

/// <summary>All weights of a Llama model. Matrices are views over the memory-mapped model file.</summary>
public sealed class LlamaWeights
{
    public required TensorView TokenEmbedding { get; init; }  // (vocab, dim)
    public required LlamaLayerWeights[] Layers { get; init; }
    public required float[] FinalNorm { get; init; }          // (dim)
    public float[]? FinalNormBias { get; init; }              // (dim) LayerNorm bias, GPT-2
    public TensorView? PositionEmbedding { get; init; }       // (context, dim) learned positions, GPT-2
    public required TensorView Output { get; init; }          // (vocab, dim); the embedding itself when tied

    /// <summary>Divisors of the RoPE frequencies (head_size / 2), llama.cpp's <c>rope_freqs.weight</c>: Llama 3.1's
    /// long-context scaling stores theta_i / factor_i this way. Null when every factor is 1.</summary>
    public float[]? RopeFrequencyFactors { get; init; }

    /// <summary>Pinned copies of weight matrices packed for the AVX2 products (see <see cref="ModelOptions.PackWeights"/>),
    /// held here so they live as long as the views that point into them.</summary>
    internal byte[][]? PackedStorage { get; init; }

    /// <summary>The fetch unit that brings layers in from the model file ahead of their cycles; null when the weights
    /// are not mapped from a file or fetching ahead is off (<see cref="ModelOptions.FetchAhead"/>).</summary>
    internal WeightFetch? Fetch { get; init; }

    /// <summary>The kernels the forward pass runs these weights' products and layer kernels on
    /// (<see cref="ModelOptions.Kernels"/>).</summary>
    public KernelOptions Kernels { get; init; } = KernelOptions.Best;

    /// <summary>The fast paths these weights run without, one line each: kernels below the fast path because the machine
    /// lacks AVX2 or FMA (<see cref="KernelOptions.Shortfall"/>), and every Q4_0 or Q8_0 matrix that packing had to leave
    /// in its file layout, and why. Empty when every fast path applies.</summary>
    public IReadOnlyList<string> KernelFallbacks => Kernels.Shortfall is { } shortfall ? [shortfall, .. PackingFallbacks] : PackingFallbacks;

    /// <summary>The Q4_0 and Q8_0 matrices packing had to leave in their file layout, and why.</summary>
    internal IReadOnlyList<string> PackingFallbacks { get; init; } = [];

    /// <summary>True when the output head is the token embedding (tied weights).</summary>
    public bool TiedOutput => Output.SameData(TokenEmbedding);
}
