using System.Text;
using ClockLM.Tensors;

namespace ClockLM.Gguf;

/// <summary>
/// A GGUF file (versions 2 and 3), memory-mapped. Metadata and the tensor table are parsed at open;
/// tensor data stays in the mapping and is handed out as spans over it, never copied.
/// </summary>
/// <remarks>
/// Every count, length and offset read from the file is checked against the bytes that remain before it is used,
/// so a truncated or hostile file ends in a <see cref="GgufFormatException"/> and never in an allocation larger
/// than the file.
/// </remarks>
public sealed unsafe class GgufFile : IDisposable
{
    /// <summary>"GGUF" read as a little-endian uint.</summary>
    public const uint Magic = 0x46554747;

    /// <summary>Alignment of the data section when <c>general.alignment</c> is absent.</summary>
    public const int DefaultAlignment = 32;

    /// <summary>Arrays nested deeper than this are refused.</summary>
    public const int MaxArrayNesting = 8;

    /// <summary>Largest number of dimensions a tensor may have (ggml's GGML_MAX_DIMS).</summary>
    public const int MaxDimensions = 4;

    private readonly MappedFile _file;
    private byte* _base;
    private readonly Dictionary<string, GgufTensorInfo> _tensorsByName = new(StringComparer.Ordinal);

    private GgufFile(MappedFile file)
    {
        Path = file.Path;
        _file = file;
        _base = file.Pointer;
        FileLength = file.Length;
    }

    /// <summary>The path the file was opened from.</summary>
    public string Path { get; }

    /// <summary>File size in bytes.</summary>
    public long FileLength { get; }

    /// <summary>Format version (2 or 3).</summary>
    public uint Version { get; private set; }

    /// <summary>Metadata in file order.</summary>
    public IReadOnlyDictionary<string, GgufValue> Metadata => _metadata;
    private readonly Dictionary<string, GgufValue> _metadata = new(StringComparer.Ordinal);

    /// <summary>Metadata keys in the order the file lists them.</summary>
    public IReadOnlyList<string> MetadataKeys => _metadataKeys;
    private readonly List<string> _metadataKeys = [];

    /// <summary>The tensor table in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors => _tensors;
    private readonly List<GgufTensorInfo> _tensors = [];

    /// <summary>Alignment of tensor data (from <c>general.alignment</c>, default 32).</summary>
    public int Alignment { get; private set; } = DefaultAlignment;

    /// <summary>Absolute file offset where the data section starts.</summary>
    public long DataOffset { get; private set; }

    /// <summary>Opens and parses a GGUF file. Throws <see cref="GgufFormatException"/> when it is not valid.</summary>
    public static GgufFile Open(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path}: no such file", path);
        long length = new FileInfo(path).Length;
        if (length < 4 + 4 + 8 + 8)
            throw new GgufFormatException(path, $"file is {length} bytes, too short for a GGUF header (24 bytes)");

        var file = new GgufFile(new MappedFile(path));
        try
        {
            file.Parse();
            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Finds a tensor by name, or null.</summary>
    public GgufTensorInfo? FindTensor(string name) => _tensorsByName.GetValueOrDefault(name);

    /// <summary>Finds a tensor by name; a missing tensor is a format error naming it.</summary>
    public GgufTensorInfo GetTensor(string name) =>
        FindTensor(name) ?? throw new GgufFormatException(Path, $"tensor '{name}' is missing");

    /// <summary>The bytes of a tensor, as a span over the mapping (no copy).</summary>
    public ReadOnlySpan<byte> GetTensorData(GgufTensorInfo tensor)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        long bytes = tensor.ByteCount;
        if (bytes > int.MaxValue)
            throw new GgufFormatException(Path, $"tensor '{tensor.Name}' is {bytes} bytes; tensors over 2 GiB are not supported");
        return new ReadOnlySpan<byte>(_base + DataOffset + tensor.Offset, (int)bytes);
    }

    /// <summary>A tensor as a (rows x row length) view over the mapping, valid while this file is open.</summary>
    public TensorView GetView(GgufTensorInfo tensor)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        if (tensor.RowLength > int.MaxValue || tensor.RowCount > int.MaxValue)
            throw new GgufFormatException(Path, $"tensor '{tensor.Name}' {tensor.ShapeText} is too large to view as a matrix");
        return new TensorView(tensor.Type, (int)tensor.RowCount, (int)tensor.RowLength, _base + DataOffset + tensor.Offset);
    }

    // ---- typed metadata access -------------------------------------------------------------

    /// <summary>True when the key is present.</summary>
    public bool Has(string key) => _metadata.ContainsKey(key);

    /// <summary>A metadata value, or null.</summary>
    public GgufValue? Find(string key) => _metadata.GetValueOrDefault(key);

    /// <summary>A required string.</summary>
    public string GetString(string key) => Convert(key, v => v.AsString(), "a string");

    /// <summary>An optional string.</summary>
    public string? GetStringOrNull(string key) => Has(key) ? GetString(key) : null;

    /// <summary>A required integer of any width.</summary>
    public long GetInteger(string key) => Convert(key, v => v.AsInt64(), "an integer");

    /// <summary>An optional integer.</summary>
    public long GetInteger(string key, long fallback) => Has(key) ? GetInteger(key) : fallback;

    /// <summary>An optional number of any type.</summary>
    public double GetNumber(string key, double fallback) => Has(key) ? Convert(key, v => v.AsDouble(), "a number") : fallback;

    /// <summary>An optional bool.</summary>
    public bool GetBool(string key, bool fallback) => Has(key) ? Convert(key, v => v.AsBool(), "a bool") : fallback;

    /// <summary>A required array with elements of exactly type <typeparamref name="T"/>.</summary>
    public T[] GetArray<T>(string key) => Convert(key, v => v.AsArray<T>(), $"an array of {typeof(T).Name}");

    private T Convert<T>(string key, Func<GgufValue, T> convert, string expected)
    {
        if (!_metadata.TryGetValue(key, out var value))
            throw new GgufFormatException(Path, $"metadata key '{key}' is missing");
        try
        {
            return convert(value);
        }
        catch (InvalidCastException)
        {
            throw new GgufFormatException(Path, $"metadata key '{key}' is {value.Describe()}, expected {expected}");
        }
    }

    // ---- parsing ---------------------------------------------------------------------------

    private long _pos;

    private GgufFormatException Error(string problem) => new(Path, problem);

    private long Remaining => FileLength - _pos;

    private void Need(long bytes, string what)
    {
        if (bytes < 0 || bytes > Remaining)
            throw Error($"{what} at offset {_pos} needs {(ulong)bytes} bytes but only {Remaining} remain (file truncated or corrupt)");
    }

    private T Read<T>(string what) where T : unmanaged
    {
        Need(sizeof(T), what);
        T v = *(T*)(_base + _pos);  // little-endian host; GGUF is little-endian
        _pos += sizeof(T);
        return v;
    }

    private string ReadString(string what)
    {
        ulong len = Read<ulong>($"length of {what}");
        if (len > (ulong)Remaining)
            throw Error($"{what} at offset {_pos - 8} claims {len} bytes but only {Remaining} remain");
        var s = Encoding.UTF8.GetString(_base + _pos, (int)len);
        _pos += (long)len;
        return s;
    }

    private void Parse()
    {
        uint magic = Read<uint>("magic");
        if (magic != Magic)
            throw Error($"not a GGUF file: magic is 0x{magic:X8}, expected 0x{Magic:X8} (\"GGUF\")");
        Version = Read<uint>("version");
        if (Version == 1)
            throw Error("GGUF version 1 is not supported (versions 2 and 3 are)");
        if (Version is not (2 or 3))
        {
            string hint = (Version & 0xFFFF) == 0 ? " (a big-endian file?)" : "";
            throw Error($"GGUF version {Version} is not supported (versions 2 and 3 are){hint}");
        }
        ulong tensorCount = Read<ulong>("tensor count");
        ulong kvCount = Read<ulong>("metadata count");
        // Each entry takes at least: key-value 8+4+1 bytes, tensor info 8+4+8+4+8 bytes.
        if (kvCount > (ulong)Remaining / 13)
            throw Error($"metadata count {kvCount} cannot fit in the {FileLength} byte file");
        if (tensorCount > (ulong)Remaining / 32)
            throw Error($"tensor count {tensorCount} cannot fit in the {FileLength} byte file");

        for (ulong i = 0; i < kvCount; i++)
        {
            string key = ReadString($"key of metadata entry {i}");
            var type = (GgufValueType)Read<uint>($"type of metadata '{key}'");
            var value = ReadValue(type, key, depth: 0);
            if (!_metadata.TryAdd(key, value))
                throw Error($"metadata key '{key}' appears twice");
            _metadataKeys.Add(key);
        }

        if (_metadata.TryGetValue("general.alignment", out var align))
        {
            if (align.Type != GgufValueType.UInt32)
                throw Error($"general.alignment is {align.Describe()}, expected UInt32");
            uint a = (uint)align.Value;
            if (a == 0 || (a & (a - 1)) != 0 || a > 1 << 30)
                throw Error($"general.alignment is {a}, expected a power of two");
            Alignment = (int)a;
        }

        for (ulong i = 0; i < tensorCount; i++)
            _tensors.Add(ReadTensorInfo(i));

        DataOffset = (_pos + Alignment - 1) / Alignment * Alignment;
        long dataLength = FileLength - DataOffset;
        foreach (var t in _tensors)
        {
            long bytes = t.ByteCount;
            if (t.Offset > dataLength || bytes > dataLength - t.Offset)
                throw Error($"tensor '{t.Name}' data [{t.Offset}, {t.Offset + bytes}) lies past the end of the data section ({Math.Max(0, dataLength)} bytes; file truncated?)");
        }
        // Each tensor owns its bytes: two tensors over the same data would alias each other's weights.
        var byOffset = _tensors.OrderBy(t => t.Offset).ToList();
        for (int i = 1; i < byOffset.Count; i++)
        {
            var previous = byOffset[i - 1];
            if (byOffset[i].Offset < previous.Offset + previous.ByteCount)
                throw Error($"tensor '{byOffset[i].Name}' data starts at offset {byOffset[i].Offset}, inside tensor '{previous.Name}' " +
                    $"[{previous.Offset}, {previous.Offset + previous.ByteCount}): tensor data may not overlap");
        }
    }

    private GgufTensorInfo ReadTensorInfo(ulong index)
    {
        string name = ReadString($"name of tensor {index}");
        uint nDims = Read<uint>($"dimension count of tensor '{name}'");
        if (nDims == 0 || nDims > MaxDimensions)
            throw Error($"tensor '{name}' has {nDims} dimensions, expected 1 to {MaxDimensions}");
        var dims = new long[nDims];
        long elements = 1;
        for (int d = 0; d < nDims; d++)
        {
            ulong ne = Read<ulong>($"dimension {d} of tensor '{name}'");
            if (ne == 0 || ne > long.MaxValue / (ulong)elements)
                throw Error($"tensor '{name}' dimension {d} is {ne}: expected at least 1 and a total element count below 2^63");
            dims[d] = (long)ne;
            elements *= (long)ne;
        }
        uint rawType = Read<uint>($"type of tensor '{name}'");
        var type = (GgmlType)rawType;
        if (!GgmlTypeInfo.IsKnown(type))
            throw Error($"tensor '{name}' has type {rawType}, which ClockLM does not know");
        int block = GgmlTypeInfo.BlockSize(type);
        if (dims[0] % block != 0)
            throw Error($"tensor '{name}' of type {type} has row length {dims[0]}, not a multiple of the block size {block}");
        if (elements / block > long.MaxValue / GgmlTypeInfo.BlockBytes(type))
            throw Error($"tensor '{name}' is too large");
        ulong offset = Read<ulong>($"offset of tensor '{name}'");
        if (offset % (ulong)Alignment != 0)
            throw Error($"tensor '{name}' offset {offset} is not a multiple of the alignment {Alignment}");
        if (offset > (ulong)FileLength)
            throw Error($"tensor '{name}' offset {offset} lies past the end of the file ({FileLength} bytes)");
        var info = new GgufTensorInfo(name, type, dims, (long)offset);
        if (!_tensorsByName.TryAdd(name, info))
            throw Error($"tensor '{name}' appears twice");
        return info;
    }

    private GgufValue ReadValue(GgufValueType type, string key, int depth)
    {
        string what = $"value of '{key}'";
        switch (type)
        {
            case GgufValueType.UInt8: return GgufValue.From(Read<byte>(what));
            case GgufValueType.Int8: return GgufValue.From(Read<sbyte>(what));
            case GgufValueType.UInt16: return GgufValue.From(Read<ushort>(what));
            case GgufValueType.Int16: return GgufValue.From(Read<short>(what));
            case GgufValueType.UInt32: return GgufValue.From(Read<uint>(what));
            case GgufValueType.Int32: return GgufValue.From(Read<int>(what));
            case GgufValueType.Float32: return GgufValue.From(Read<float>(what));
            case GgufValueType.UInt64: return GgufValue.From(Read<ulong>(what));
            case GgufValueType.Int64: return GgufValue.From(Read<long>(what));
            case GgufValueType.Float64: return GgufValue.From(Read<double>(what));
            case GgufValueType.Bool:
                byte b = Read<byte>(what);
                if (b > 1) throw Error($"'{key}' is a bool with byte value {b}, expected 0 or 1");
                return GgufValue.From(b != 0);
            case GgufValueType.String: return GgufValue.From(ReadString(what));
            case GgufValueType.Array: return ReadArray(key, depth);
            default:
                throw Error($"metadata '{key}' has value type {(uint)type}, which is not a GGUF type (0 to 12)");
        }
    }

    private GgufValue ReadArray(string key, int depth)
    {
        if (depth >= MaxArrayNesting)
            throw Error($"metadata '{key}' nests arrays deeper than {MaxArrayNesting} levels");
        var elementType = (GgufValueType)Read<uint>($"element type of array '{key}'");
        ulong count = Read<ulong>($"length of array '{key}'");
        long minElementBytes = elementType switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 or GgufValueType.String => 8,
            GgufValueType.Array => 12,
            _ => throw Error($"array '{key}' has element type {(uint)elementType}, which is not a GGUF type (0 to 12)"),
        };
        if (count > (ulong)(Remaining / minElementBytes))
            throw Error($"array '{key}' claims {count} elements of {elementType}, more than the {Remaining} remaining bytes can hold");
        int n = (int)count;
        switch (elementType)
        {
            case GgufValueType.UInt8: return GgufValue.Array(elementType, ReadBlock<byte>(n));
            case GgufValueType.Int8: return GgufValue.Array(elementType, ReadBlock<sbyte>(n));
            case GgufValueType.UInt16: return GgufValue.Array(elementType, ReadBlock<ushort>(n));
            case GgufValueType.Int16: return GgufValue.Array(elementType, ReadBlock<short>(n));
            case GgufValueType.UInt32: return GgufValue.Array(elementType, ReadBlock<uint>(n));
            case GgufValueType.Int32: return GgufValue.Array(elementType, ReadBlock<int>(n));
            case GgufValueType.Float32: return GgufValue.Array(elementType, ReadBlock<float>(n));
            case GgufValueType.UInt64: return GgufValue.Array(elementType, ReadBlock<ulong>(n));
            case GgufValueType.Int64: return GgufValue.Array(elementType, ReadBlock<long>(n));
            case GgufValueType.Float64: return GgufValue.Array(elementType, ReadBlock<double>(n));
            case GgufValueType.Bool:
            {
                var bools = new bool[n];
                for (int i = 0; i < n; i++)
                {
                    byte b = Read<byte>($"element {i} of '{key}'");
                    if (b > 1) throw Error($"element {i} of bool array '{key}' is {b}, expected 0 or 1");
                    bools[i] = b != 0;
                }
                return GgufValue.Array(elementType, bools);
            }
            case GgufValueType.String:
            {
                var strings = new string[n];
                for (int i = 0; i < n; i++)
                    strings[i] = ReadString($"element {i} of '{key}'");
                return GgufValue.Array(elementType, strings);
            }
            default:
            {
                var arrays = new GgufValue[n];
                for (int i = 0; i < n; i++)
                    arrays[i] = ReadArray($"{key}[{i}]", depth + 1);
                return GgufValue.Array(elementType, arrays);
            }
        }
    }

    private T[] ReadBlock<T>(int count) where T : unmanaged
    {
        var result = new T[count];
        new ReadOnlySpan<T>(_base + _pos, count).CopyTo(result);
        _pos += (long)count * sizeof(T);
        return result;
    }

    /// <summary>Unmaps the file. Spans obtained from it must no longer be used.</summary>
    public void Dispose()
    {
        _base = null;
        _file.Dispose();
    }
}
