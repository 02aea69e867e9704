using System.Text;
using ClockLM.Tensors;

namespace ClockLM.Gguf;

/// <summary>
/// Writes a GGUF version 3 file: metadata in the order added, then the tensor table, then the aligned tensor data.
/// </summary>
public sealed class GgufWriter
{
    private readonly List<(string Key, GgufValue Value)> _metadata = [];
    private readonly List<(string Name, GgmlType Type, long[] Dims, long Bytes, Action<Stream> WriteData)> _tensors = [];

    /// <summary>Alignment of the data section (written as <c>general.alignment</c> when not 32).</summary>
    public int Alignment { get; init; } = GgufFile.DefaultAlignment;

    /// <summary>Adds or replaces a metadata entry.</summary>
    public GgufWriter Set(string key, GgufValue value)
    {
        int i = _metadata.FindIndex(e => e.Key == key);
        if (i >= 0) _metadata[i] = (key, value);
        else _metadata.Add((key, value));
        return this;
    }

    public GgufWriter Set(string key, string value) => Set(key, GgufValue.From(value));
    public GgufWriter Set(string key, uint value) => Set(key, GgufValue.From(value));
    public GgufWriter Set(string key, int value) => Set(key, GgufValue.From(value));
    public GgufWriter Set(string key, float value) => Set(key, GgufValue.From(value));
    public GgufWriter Set(string key, bool value) => Set(key, GgufValue.From(value));

    /// <summary>Copies every metadata entry of <paramref name="file"/> whose key passes <paramref name="filter"/>.</summary>
    public GgufWriter CopyMetadata(GgufFile file, Func<string, bool> filter)
    {
        foreach (string key in file.MetadataKeys)
            if (filter(key)) Set(key, file.Metadata[key]);
        return this;
    }

    /// <summary>Adds a tensor. <paramref name="dims"/> are innermost first (ggml order); data is in the type's block layout.</summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] dims, byte[] data)
    {
        long expected = TensorBytes(name, type, dims);
        if (data.Length != expected)
            throw new ArgumentException($"tensor '{name}': {data.Length} bytes given, {type} {string.Join('x', dims)} needs {expected}");
        return AddTensor(name, type, dims, stream => stream.Write(data));
    }

    /// <summary>Adds a tensor whose data is produced at write time by <paramref name="writeData"/>, which must write
    /// exactly the tensor's byte count (so large models never sit in memory whole).</summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] dims, Action<Stream> writeData)
    {
        long bytes = TensorBytes(name, type, dims);
        if (_tensors.Exists(t => t.Name == name))
            throw new ArgumentException($"tensor '{name}' added twice");
        _tensors.Add((name, type, (long[])dims.Clone(), bytes, writeData));
        return this;
    }

    /// <summary>Adds a tensor given row by row as floats (<paramref name="fillRow"/> fills row r), converted to
    /// <paramref name="type"/>'s block layout at write time, so a large model never sits in memory whole.</summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] dims, Action<int, Span<float>> fillRow)
    {
        long bytes = TensorBytes(name, type, dims);
        int cols = checked((int)dims[0]);
        long rows = bytes / GgmlTypeInfo.RowBytes(type, cols);
        return AddTensor(name, type, dims, stream =>
        {
            var values = new float[cols];
            var row = new byte[GgmlTypeInfo.RowBytes(type, cols)];
            for (int r = 0; r < rows; r++)
            {
                fillRow(r, values);
                Quantize.Row(type, values, row);
                stream.Write(row);
            }
        });
    }

    private static long TensorBytes(string name, GgmlType type, long[] dims)
    {
        if (!GgmlTypeInfo.IsKnown(type)) throw new ArgumentException($"tensor '{name}': unknown type {type}");
        if (dims.Length is 0 or > GgufFile.MaxDimensions || dims.Any(d => d <= 0))
            throw new ArgumentException($"tensor '{name}': bad shape [{string.Join(", ", dims)}]");
        if (dims[0] % GgmlTypeInfo.BlockSize(type) != 0)
            throw new ArgumentException($"tensor '{name}': row length {dims[0]} is not a multiple of {type}'s block size {GgmlTypeInfo.BlockSize(type)}");
        long elements = 1;
        foreach (long d in dims) elements *= d;
        return elements / GgmlTypeInfo.BlockSize(type) * GgmlTypeInfo.BlockBytes(type);
    }

    /// <summary>Adds an F32 tensor from floats.</summary>
    public GgufWriter AddTensor(string name, long[] dims, ReadOnlySpan<float> values) =>
        AddTensor(name, GgmlType.F32, dims, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values).ToArray());

    /// <summary>Writes the file atomically (<see cref="AtomicFile"/>): a failure leaves what was at
    /// <paramref name="path"/> untouched. <paramref name="progress"/> hears the fraction of tensor bytes written (0 to
    /// 1), after each tensor.</summary>
    public void Write(string path, IProgress<double>? progress = null) => AtomicFile.Write(path, stream => Write(stream, progress));

    /// <summary>Writes the file to a stream; <paramref name="progress"/> hears the fraction of tensor bytes written.</summary>
    public void Write(Stream stream, IProgress<double>? progress = null)
    {
        if (Alignment != GgufFile.DefaultAlignment)
            Set("general.alignment", (uint)Alignment);
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(GgufFile.Magic);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            WriteString(w, key);
            w.Write((uint)value.Type);
            WriteValue(w, value);
        }
        long offset = 0;
        for (int i = 0; i < _tensors.Count; i++)
        {
            var t = _tensors[i];
            WriteString(w, t.Name);
            w.Write((uint)t.Dims.Length);
            foreach (long d in t.Dims) w.Write((ulong)d);
            w.Write((uint)t.Type);
            w.Write((ulong)offset);
            offset = Align(offset + t.Bytes);
        }
        Pad(w);
        w.Flush();
        long written = 0, total = Math.Max(1, _tensors.Sum(t => t.Bytes));
        foreach (var t in _tensors)
        {
            long start = stream.Position;
            t.WriteData(stream);
            if (stream.Position - start != t.Bytes)
                throw new InvalidOperationException($"tensor '{t.Name}': {stream.Position - start} bytes written, {t.Bytes} expected");
            Pad(w);
            written += t.Bytes;
            progress?.Report((double)written / total);
        }
    }

    private long Align(long n) => (n + Alignment - 1) / Alignment * Alignment;

    private void Pad(BinaryWriter w)
    {
        w.Flush();
        long pos = w.BaseStream.Position;
        for (long i = pos; i < Align(pos); i++) w.Write((byte)0);
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, GgufValue value)
    {
        switch (value.Value)
        {
            case byte v: w.Write(v); break;
            case sbyte v: w.Write(v); break;
            case ushort v: w.Write(v); break;
            case short v: w.Write(v); break;
            case uint v: w.Write(v); break;
            case int v: w.Write(v); break;
            case float v: w.Write(v); break;
            case ulong v: w.Write(v); break;
            case long v: w.Write(v); break;
            case double v: w.Write(v); break;
            case bool v: w.Write((byte)(v ? 1 : 0)); break;
            case string v: WriteString(w, v); break;
            case Array a:
                w.Write((uint)value.ElementType);
                w.Write((ulong)a.Length);
                if (a is GgufValue[] nested)
                {
                    foreach (var inner in nested) WriteValue(w, inner);
                }
                else if (a is string[] strings)
                {
                    foreach (var s in strings) WriteString(w, s);
                }
                else if (a is bool[] bools)
                {
                    foreach (var b in bools) w.Write((byte)(b ? 1 : 0));
                }
                else
                {
                    foreach (object? e in a) WriteValue(w, Box(e!));
                }
                break;
            default:
                throw new ArgumentException($"cannot write a metadata value of type {value.Value.GetType().Name}");
        }
    }

    private static GgufValue Box(object e) => e switch
    {
        byte v => GgufValue.From(v),
        sbyte v => GgufValue.From(v),
        ushort v => GgufValue.From(v),
        short v => GgufValue.From(v),
        uint v => GgufValue.From(v),
        int v => GgufValue.From(v),
        float v => GgufValue.From(v),
        ulong v => GgufValue.From(v),
        long v => GgufValue.From(v),
        double v => GgufValue.From(v),
        _ => throw new ArgumentException($"cannot write array element of type {e.GetType().Name}"),
    };
}
