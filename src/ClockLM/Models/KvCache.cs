namespace ClockLM.Models;

/// <summary>
/// The key/value cache: for every layer and position, the keys and values that attention reads back.
/// Layout (layer, position, kv_dim), as in llama2.c's run.c.
/// </summary>
public sealed class KvCache
{
    private readonly float[] _keys;
    private readonly float[] _values;

    /// <summary>Allocates a cache for <paramref name="contextLength"/> positions.</summary>
    public KvCache(LlamaConfig config, int contextLength)
    {
        Layers = config.Layers;
        KvDim = config.KvDim;
        ContextLength = contextLength;
        long size = (long)Layers * contextLength * KvDim;
        if (size > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(contextLength), contextLength, "KV cache too large for this context length");
        _keys = new float[size];
        _values = new float[size];
    }

    public int Layers { get; }
    public int KvDim { get; }

    /// <summary>Positions the cache holds.</summary>
    public int ContextLength { get; }

    /// <summary>Bytes of K and V one position takes in one layer.</summary>
    public long BytesPerPositionPerLayer => 2L * KvDim * sizeof(float);

    /// <summary>Keys of <paramref name="layer"/> at <paramref name="position"/> (kv_dim floats).</summary>
    public Span<float> Key(int layer, int position) => _keys.AsSpan(Offset(layer, position), KvDim);

    /// <summary>Values of <paramref name="layer"/> at <paramref name="position"/> (kv_dim floats).</summary>
    public Span<float> Value(int layer, int position) => _values.AsSpan(Offset(layer, position), KvDim);

    /// <summary>Keys of <paramref name="layer"/> for positions [0, count).</summary>
    public ReadOnlySpan<float> Keys(int layer, int count) => _keys.AsSpan(Offset(layer, 0), count * KvDim);

    /// <summary>Values of <paramref name="layer"/> for positions [0, count).</summary>
    public ReadOnlySpan<float> Values(int layer, int count) => _values.AsSpan(Offset(layer, 0), count * KvDim);

    private int Offset(int layer, int position) => (layer * ContextLength + position) * KvDim;
}
