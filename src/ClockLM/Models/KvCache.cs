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
    private int _nonFiniteRows;   // stores of rows holding an infinite or NaN half since the cache was last emptied
    private long _exactWidenings; // attention reads of F16 rows on the exact widening (ExactHalfWidenings)

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
        var keyRow = _keys[layer].AsSpan(position * KeyRowBytes, KeyRowBytes);
        var valueRow = _values[layer].AsSpan(position * ValueRowBytes, ValueRowBytes);
        CacheRows.Store(KeyType, key, keyRow);
        CacheRows.Store(ValueType, value, valueRow);
        CountNonFinite(KeyType, keyRow);
        CountNonFinite(ValueType, valueRow);
    }

    /// <summary>
    /// True while every F16 row stored since the cache was last emptied (<see cref="Truncate"/> to 0, <see cref="Read"/>,
    /// <see cref="CopyPrefix"/>) holds finite halves only: attention then widens them in three operations rather than
    /// eleven, with the same bits. A key or value that overflows a half (beyond ±65504) or is NaN turns this off until
    /// the cache is emptied, and attention reads it on the exact widening, counted in <see cref="ExactHalfWidenings"/>.
    /// </summary>
    public bool HalvesAllFinite => _nonFiniteRows == 0;

    /// <summary>Attention reads (one per layer, key/value head and row of a step, for keys and for values) of F16 rows
    /// that took the exact widening on the vector path because of an infinite or NaN half
    /// (<see cref="HalvesAllFinite"/>) or a query or weight too large to scale: a fallback, zero in normal running.</summary>
    public long ExactHalfWidenings => Interlocked.Read(ref _exactWidenings);

    /// <summary>Counts one read in <see cref="ExactHalfWidenings"/>; attention threads call it concurrently.</summary>
    internal void CountExactHalfWidening() => Interlocked.Increment(ref _exactWidenings);

    private void CountNonFinite(GgmlType type, ReadOnlySpan<byte> row)
    {
        if (!CacheRows.AllFinite(type, row)) _nonFiniteRows++;
    }

    /// <summary>Counts the non-finite rows of positions [0, count) of every layer afresh, after their bytes were replaced.</summary>
    private void RecountNonFinite(int count)
    {
        _nonFiniteRows = 0;
        if (KeyType != GgmlType.F16 && ValueType != GgmlType.F16) return;
        for (int l = 0; l < Layers; l++)
            for (int t = 0; t < count; t++)
            {
                CountNonFinite(KeyType, KeyRow(l, t));
                CountNonFinite(ValueType, _values[l].AsSpan(t * ValueRowBytes, ValueRowBytes));
            }
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
        new(KeyBytes(layer, start, count), KeyType, KeyRowBytes, offset, count, HalvesAllFinite);

    /// <summary>Values of <paramref name="layer"/>, as <see cref="Keys"/>.</summary>
    internal CacheRows Values(int layer, int start, int count, int offset) =>
        new(ValueBytes(layer, start, count), ValueType, ValueRowBytes, offset, count, HalvesAllFinite);

    /// <summary>Forgets positions from <paramref name="length"/> on (rolls the cache back to its first
    /// <paramref name="length"/> positions); a length at or beyond <see cref="Length"/> changes nothing. The next token
    /// then runs at position <paramref name="length"/>.</summary>
    public void Truncate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length < _length) _length = length;
        if (length == 0) _nonFiniteRows = 0;
    }

    /// <summary>Copies positions [0, <paramref name="count"/>) of every layer from <paramref name="source"/> (a cache of
    /// the same model and types) and keeps just those: this cache then holds the same prefix, bit for bit.</summary>
    /// <exception cref="ArgumentException">The caches differ in shape or types.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is beyond the source's length or this context.</exception>
    public void CopyPrefix(KvCache source, int count)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Layers != Layers || source.KvDim != KvDim || source.KeyType != KeyType || source.ValueType != ValueType)
            throw new ArgumentException($"a cache of {source.Layers} layers, kv_dim {source.KvDim}, {source.Types} cannot fill one of {Layers} layers, kv_dim {KvDim}, {Types}", nameof(source));
        if ((uint)count > (uint)Math.Min(source.Length, ContextLength))
            throw new ArgumentOutOfRangeException(nameof(count), count, $"the source holds {source.Length} positions and this cache {ContextLength}");
        if (ReferenceEquals(source, this)) { Truncate(count); return; }
        for (int l = 0; l < Layers; l++)
        {
            source.KeyBytes(l, 0, count).CopyTo(_keys[l]);
            source.ValueBytes(l, 0, count).CopyTo(_values[l]);
        }
        _length = count;
        _nonFiniteRows = source._nonFiniteRows == 0 ? 0 : 1; // the source's rows beyond count may hold them: not counted anew
    }

    /// <summary>Removes positions [<paramref name="start"/>, <paramref name="start"/> + <paramref name="count"/>):
    /// the ones after them move down by <paramref name="count"/>, as stored (keys keep the rotation of their old
    /// positions; <see cref="Transformer.ShiftContext"/> re-rotates them).</summary>
    internal void Remove(int start, int count)
    {
        if (start < 0 || count < 0 || start + count > _length)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"positions {start}..{start + count - 1} are not all in the cache's {_length}");
        int moved = _length - start - count;
        for (int l = 0; l < Layers; l++)
        {
            _keys[l].AsSpan((start + count) * KeyRowBytes, moved * KeyRowBytes).CopyTo(_keys[l].AsSpan(start * KeyRowBytes));
            _values[l].AsSpan((start + count) * ValueRowBytes, moved * ValueRowBytes).CopyTo(_values[l].AsSpan(start * ValueRowBytes));
        }
        _length -= count;
    }

    /// <summary>Re-stores the key of <paramref name="layer"/> at <paramref name="position"/> from floats (after a change
    /// of its rotation), in the cache's key type.</summary>
    internal void StoreKey(int layer, int position, ReadOnlySpan<float> key)
    {
        CheckPosition(position);
        CacheRows.Store(KeyType, key[..KvDim], KeyRow(layer, position));
        CountNonFinite(KeyType, KeyRow(layer, position));
    }

    private string Types => $"keys {KvCacheOptions.Name(KeyType)}, values {KvCacheOptions.Name(ValueType)}";

    // ---- serialization: "CLKV", then little-endian u32 version, layers, kv_dim, key type, value type (ggml numbers) and
    // the count of positions, then for every layer the stored key rows of positions [0, count), then its value rows.

    private static ReadOnlySpan<byte> Magic => "CLKV"u8;
    private const int Version = 1, HeaderBytes = 4 + 6 * 4;

    /// <summary>Bytes <see cref="Write"/> writes for <paramref name="count"/> positions.</summary>
    public long SerializedBytes(int count) => HeaderBytes + (long)count * BytesPerPosition;

    /// <summary>Writes positions [0, <paramref name="count"/>) exactly as stored, with the cache's shape and types, so that
    /// <see cref="Read"/> into a cache of the same model and types restores them bit for bit.</summary>
    public void Write(Stream stream, int count)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if ((uint)count > (uint)_length)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"the cache holds {_length} positions");
        Span<byte> header = stackalloc byte[HeaderBytes];
        Magic.CopyTo(header);
        uint[] fields = [Version, (uint)Layers, (uint)KvDim, (uint)KeyType, (uint)ValueType, (uint)count];
        for (int i = 0; i < fields.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(header[(4 + 4 * i)..], fields[i]);
        stream.Write(header);
        for (int l = 0; l < Layers; l++)
        {
            stream.Write(KeyBytes(l, 0, count));
            stream.Write(ValueBytes(l, 0, count));
        }
    }

    /// <summary>Reads what <see cref="Write"/> wrote into this cache, which then holds those positions (its
    /// <see cref="Length"/>); returns their count. The header is checked before anything is changed; data that ends early
    /// leaves the cache empty.</summary>
    /// <exception cref="InvalidDataException">Not KV cache data, another version, shape or types, more positions than the
    /// context holds, or data that ends early; the message names the field, its value and the expected one.</exception>
    public int Read(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var header = new byte[HeaderBytes];
        int got = stream.ReadAtLeast(header, HeaderBytes, throwOnEndOfStream: false);
        if (got < HeaderBytes || !header.AsSpan(0, 4).SequenceEqual(Magic))
            throw new InvalidDataException(got < 4 ? "KV cache data: too short for a header" : "KV cache data: it does not start with \"CLKV\"");
        uint Field(int i) => BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4 + 4 * i));
        Expect("version", Field(0), Version);
        Expect("layers", Field(1), (uint)Layers);
        Expect("kv_dim", Field(2), (uint)KvDim);
        if (Field(3) != (uint)KeyType)
            throw new InvalidDataException($"KV cache data: key type is {(GgmlType)Field(3)}, this cache stores {KeyType}");
        if (Field(4) != (uint)ValueType)
            throw new InvalidDataException($"KV cache data: value type is {(GgmlType)Field(4)}, this cache stores {ValueType}");
        uint count = Field(5);
        if (count > (uint)ContextLength)
            throw new InvalidDataException($"KV cache data: {count} positions, but this cache holds {ContextLength}");
        _length = 0;
        _nonFiniteRows = 0;
        for (int l = 0; l < Layers; l++)
        {
            ReadRows(stream, _keys[l].AsSpan(0, (int)count * KeyRowBytes), l, "keys", count);
            ReadRows(stream, _values[l].AsSpan(0, (int)count * ValueRowBytes), l, "values", count);
        }
        _length = (int)count;
        RecountNonFinite(_length);
        return (int)count;
    }

    private static void ReadRows(Stream stream, Span<byte> rows, int layer, string what, uint count)
    {
        int got = stream.ReadAtLeast(rows, rows.Length, throwOnEndOfStream: false);
        if (got < rows.Length)
            throw new InvalidDataException($"KV cache data: ends in the {what} of layer {layer} ({got} of {rows.Length} bytes for {count} positions)");
    }

    private static void Expect(string field, uint value, uint expected)
    {
        if (value != expected) throw new InvalidDataException($"KV cache data: {field} is {value}, expected {expected}");
    }

    private Span<byte> KeyRow(int layer, int position) => _keys[layer].AsSpan(position * KeyRowBytes, KeyRowBytes);

    private void CheckPosition(int position)
    {
        if ((uint)position >= (uint)ContextLength)
            throw new ArgumentOutOfRangeException(nameof(position), position, $"position outside the cache (0..{ContextLength - 1})");
    }
}
