using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ClockLM.Nn;

/// <summary>
/// Reads and writes model weights as safetensors, the format other tools (PyTorch, Keras 3, JAX) read:
/// an 8-byte little-endian header length N, N bytes of JSON
/// <c>{"name": {"dtype": "F32", "shape": [3, 2], "data_offsets": [begin, end]}, ...}</c>, then the raw
/// little-endian values, offsets counted from the end of the header.
/// </summary>
internal static class SafetensorsWeights
{
    public static void Write<T>(string path, IReadOnlyList<(string Name, Tensor<T> Value)> tensors) where T : unmanaged, IFloatingPointIeee754<T>
    {
        RequireLittleEndian();
        string dtype = DType<T>();
        int size = Marshal.SizeOf<T>();
        var header = new JsonObject
        {
            ["__metadata__"] = new JsonObject { ["format"] = "clocklm.nn" },
        };
        long offset = 0;
        foreach (var (name, value) in tensors)
        {
            long end = offset + (long)value.Length * size;
            header[name] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray([.. value.Shape.Select(d => (JsonNode)d)]),
                ["data_offsets"] = new JsonArray(offset, end),
            };
            offset = end;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        // Pad the header with spaces so the data starts 8-byte aligned.
        int padded = (json.Length + 7) / 8 * 8;

        using var file = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        file.Write(length);
        file.Write(json);
        for (int i = json.Length; i < padded; i++) file.WriteByte((byte)' ');
        foreach (var (_, value) in tensors)
            file.Write(MemoryMarshal.AsBytes(value.Data.AsSpan()));
    }

    public static void Read<T>(string path, IReadOnlyList<(string Name, Tensor<T> Value)> tensors) where T : unmanaged, IFloatingPointIeee754<T>
    {
        RequireLittleEndian();
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length < 8)
            throw new InvalidDataException($"{path}: {bytes.Length} bytes is too short for a safetensors file (8-byte header length first)");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > (ulong)(bytes.Length - 8))
            throw new InvalidDataException($"{path}: header length {headerLength} runs past the end of the {bytes.Length}-byte file");
        int dataStart = 8 + (int)headerLength;

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: the safetensors header is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            string dtype = DType<T>();
            int size = Marshal.SizeOf<T>();
            foreach (var (name, value) in tensors)
            {
                if (!document.RootElement.TryGetProperty(name, out var entry))
                    throw new InvalidDataException($"{path}: no tensor '{name}' (the model expects {string.Join(", ", tensors.Select(t => t.Name))})");
                string? fileType = entry.TryGetProperty("dtype", out var d) ? d.GetString() : null;
                if (fileType != dtype)
                    throw new InvalidDataException($"{path}: tensor '{name}' has dtype {fileType ?? "(none)"}, expected {dtype}");
                int[] shape = entry.TryGetProperty("shape", out var s) ? [.. s.EnumerateArray().Select(e => e.GetInt32())] : [];
                if (!Tensor<T>.SameShape(shape, value.Shape))
                    throw new InvalidDataException($"{path}: tensor '{name}' has shape {ShapeMismatchException.Format(shape)}, expected {ShapeMismatchException.Format(value.Shape)}");
                long[] offsets = entry.TryGetProperty("data_offsets", out var o) ? [.. o.EnumerateArray().Select(e => e.GetInt64())] : [];
                if (offsets.Length != 2 || offsets[1] - offsets[0] != (long)value.Length * size || offsets[0] < 0 || dataStart + offsets[1] > bytes.Length)
                    throw new InvalidDataException($"{path}: tensor '{name}' has data_offsets [{string.Join(", ", offsets)}], expected {(long)value.Length * size} bytes inside the file's {bytes.Length - dataStart} data bytes");
                MemoryMarshal.Cast<byte, T>(bytes.AsSpan(dataStart + (int)offsets[0], (int)(offsets[1] - offsets[0]))).CopyTo(value.Data);
            }
        }
    }

    /// <summary>The tensors a file holds, by name, with their dtype and shape; only the header is read.</summary>
    public static Dictionary<string, (string DType, int[] Shape)> Tensors(string path)
    {
        RequireLittleEndian();
        using var file = File.OpenRead(path);
        Span<byte> length = stackalloc byte[8];
        if (file.ReadAtLeast(length, 8, throwOnEndOfStream: false) < 8)
            throw new InvalidDataException($"{path}: {file.Length} bytes is too short for a safetensors file (8-byte header length first)");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(length);
        if (headerLength > (ulong)(file.Length - 8) || headerLength > 100_000_000)
            throw new InvalidDataException($"{path}: header length {headerLength} runs past the end of the {file.Length}-byte file");
        var header = new byte[headerLength];
        file.ReadExactly(header);
        var tensors = new Dictionary<string, (string, int[])>();
        try
        {
            using var document = JsonDocument.Parse(header);
            foreach (var entry in document.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__") continue;
                string dtype = entry.Value.GetProperty("dtype").GetString() ?? "";
                int[] shape = [.. entry.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32())];
                tensors[entry.Name] = (dtype, shape);
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
        {
            throw new InvalidDataException($"{path}: the safetensors header is not valid: {e.Message}", e);
        }
        return tensors;
    }

    private static string DType<T>() =>
        typeof(T) == typeof(float) ? "F32"
        : typeof(T) == typeof(double) ? "F64"
        : throw new NotSupportedException($"safetensors weights of element type {typeof(T).Name}");

    private static void RequireLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors weights are little-endian; this machine is big-endian");
    }
}
