using System.Buffers.Binary;
using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// The key/value cache: for every layer and position, the key and value rows (kv_dim values each) that attention reads
/// back, stored as <see cref="KeyType"/> and <see cref="ValueType"/> (F32, F16 or Q8_0; see <see cref="KvCacheOptions"/>).
/// Layout per layer (position, row bytes), as llama2.c's run.c lays out (layer, position, kv_dim).
/// Positions [0, <see cref="Length"/>) hold entries; the forward pass sets the length after the rows it runs.
/// </summary>
public sealed class KvCache
{
    private readonly byte[][] _keys;   // (layers) of (context, key row bytes)
    private readonly byte[][] _values; // (layers) of (context, value row bytes)
    private int _length;

    /// <summary>Allocates a cache for <paramref name="contextLength"/> positions, of the types <paramref name="options"/>
    /// give (<see cref="KvCacheOptions.Default"/>, F16, when null).</summary>
    /// <exception cref="ArgumentException">Q8_0 rows for a kv_dim that is not a multiple of 32.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A layer's rows would not fit one array.</exception>
    public KvCache(LlamaConfig config, int contextLength, KvCacheOptions? options = null)
    {
        options ??= KvCacheOptions.Default;
        Layers = config.Layers;
        KvDim = config.KvDim;
        ContextLength = contextLength;
        (KeyType, ValueType) = (options.KeyType, options.ValueType);
        KeyRowBytes = RowBytes(KeyType, "keys");
        ValueRowBytes = RowBytes(ValueType, "values");
        if ((long)contextLength * Math.Max(KeyRowBytes, ValueRowBytes) > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(contextLength), contextLength, "KV cache too large for this context length");
        _keys = new byte[Layers][];
        _values = new byte[Layers][];
        for (int l = 0; l < Layers; l++)
        {
            _keys[l] = new byte[contextLength * KeyRowBytes];
            _values[l] = new byte[contextLength * ValueRowBytes];
        }
    }

    private int RowBytes(GgmlType type, string what)
    {
        if (type == GgmlType.Q8_0 && KvDim % 32 != 0)
            throw new ArgumentException($"a Q8_0 KV cache stores {what} in blocks of 32 values, but this model's kv_dim is {KvDim}; use f16 or f32");
        return (int)GgmlTypeInfo.RowBytes(type, KvDim);
    }

    public int Layers { get; }
    public int KvDim { get; }

    /// <summary>Positions the cache holds.</summary>
    public int ContextLength { get; }

    /// <summary>The type keys are stored in.</summary>
    public GgmlType KeyType { get; }

    /// <summary>The type values are stored in.</summary>
    public GgmlType ValueType { get; }

    /// <summary>Bytes of one position's key in one layer.</summary>
    public int KeyRowBytes { get; }

    /// <summary>Bytes of one position's value in one layer.</summary>
    public int ValueRowBytes { get; }

    /// <summary>Bytes of K and V one position takes in one layer.</summary>
    public long BytesPerPositionPerLayer => KeyRowBytes + ValueRowBytes;

    /// <summary>Bytes of K and V one position (token) takes in all layers.</summary>
    public long BytesPerPosition => Layers * BytesPerPositionPerLayer;

    /// <summary>Positions [0, Length) hold entries; the rows after them are free.</summary>
    public int Length
    {
        get => _length;
        internal set => _length = (uint)value <= (uint)ContextLength ? value
            : throw new ArgumentOutOfRangeException(nameof(Length), value, $"the cache holds 0 to {ContextLength} positions");
    }

    /// <summary>Stores <paramref name="key"/> and <paramref name="value"/> (kv_dim values each) at
    /// <paramref name="position"/> of <paramref name="layer"/>, converted to the cache's types.</summary>
    public void Store(int layer, int position, ReadOnlySpan<float> key, ReadOnlySpan<float> value)
    {
        CheckPosition(position);
        if (key.Length != KvDim || value.Length != KvDim)
            throw new ArgumentException($"a key and a value have {KvDim} values each, got {key.Length} and {value.Length}");
        CacheRows.Store(KeyType, key, _keys[layer].AsSpan(position * KeyRowBytes, KeyRowBytes));
        CacheRows.Store(ValueType, value, _values[layer].AsSpan(position * ValueRowBytes, ValueRowBytes));
    }

    /// <summary>The key of <paramref name="layer"/> at <paramref name="position"/> as floats (kv_dim), exactly as
    /// attention reads it.</summary>
    public void ReadKey(int layer, int position, Span<float> key)
    {
        CheckPosition(position);
        CacheRows.Load(KeyType, KeyRow(layer, position), key[..KvDim]);
    }

    /// <summary>The value of <paramref name="layer"/> at <paramref name="position"/> as floats (kv_dim).</summary>
    public void ReadValue(int layer, int position, Span<float> value)
    {
        CheckPosition(position);
        CacheRows.Load(ValueType, _values[layer].AsSpan(position * ValueRowBytes, ValueRowBytes), value[..KvDim]);
    }

    /// <summary>The stored bytes of the keys of <paramref name="layer"/> at positions [start, start + count).</summary>
    public ReadOnlySpan<byte> KeyBytes(int layer, int start, int count) => _keys[layer].AsSpan(start * KeyRowBytes, count * KeyRowBytes);

    /// <summary>The stored bytes of the values of <paramref name="layer"/> at positions [start, start + count).</summary>
    public ReadOnlySpan<byte> ValueBytes(int layer, int start, int count) => _values[layer].AsSpan(start * ValueRowBytes, count * ValueRowBytes);

    /// <summary>Keys of <paramref name="layer"/> from <paramref name="start"/> as attention reads them: one head's values,
    /// from <paramref name="offset"/>, of each of <paramref name="count"/> rows.</summary>
    internal CacheRows Keys(int layer, int start, int count, int offset) =>
        new(KeyBytes(layer, start, count), KeyType, KeyRowBytes, offset, count);

    /// <summary>Values of <paramref name="layer"/>, as <see cref="Keys"/>.</summary>
    internal CacheRows Values(int layer, int start, int count, int offset) =>
        new(ValueBytes(layer, start, count), ValueType, ValueRowBytes, offset, count);

    private Span<byte> KeyRow(int layer, int position) => _keys[layer].AsSpan(position * KeyRowBytes, KeyRowBytes);

    private void CheckPosition(int position)
    {
        if ((uint)position >= (uint)ContextLength)
            throw new ArgumentOutOfRangeException(nameof(position), position, $"position outside the cache (0..{ContextLength - 1})");
    }
}
