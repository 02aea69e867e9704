using System.Runtime.InteropServices;
using ClockLM.Models;

namespace ClockLM.Chat;

/// <summary>
/// A slot's cached tokens and their keys and values in a file (llama.cpp's slot save/restore), readable only by the model
/// that wrote it. Layout, little-endian:
/// <code>
/// magic "CLMSLOT\0" (8 bytes), version (uint32) = 1
/// model identity (32 bytes, <see cref="ModelIdentity"/>)
/// token count n (int32), the n token ids (int32 each)
/// the KV cache's positions [0, n): per layer, the n keys then the n values, kv_dim floats each
/// </code>
/// </summary>
public static class SlotFile
{
    /// <summary>The file format's version.</summary>
    public const uint Version = 1;

    private static ReadOnlySpan<byte> Magic => "CLMSLOT\0"u8;

    /// <summary>Writes <paramref name="tokens"/> and their entries in <paramref name="cache"/> (positions 0..n-1);
    /// returns the bytes written.</summary>
    public static long Write(Stream stream, ReadOnlySpan<byte> modelIdentity, ReadOnlySpan<int> tokens, KvCache cache)
    {
        long start = stream.Position;
        using var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        writer.Write(Magic);
        writer.Write(Version);
        writer.Write(modelIdentity);
        writer.Write(tokens.Length);
        writer.Write(MemoryMarshal.AsBytes(tokens));
        for (int layer = 0; layer < cache.Layers; layer++)
        {
            writer.Write(MemoryMarshal.AsBytes(cache.Keys(layer, tokens.Length)));
            writer.Write(MemoryMarshal.AsBytes(cache.Values(layer, tokens.Length)));
        }
        writer.Flush();
        return stream.Position - start;
    }

    /// <summary>Reads a slot file named <paramref name="name"/> into <paramref name="cache"/> and returns its tokens.
    /// Everything before the keys and values is checked first; the caller forgets the cache's old entries whatever
    /// happens, so a file that ends early leaves no half-restored slot behind.</summary>
    /// <exception cref="InvalidDataException">Not a slot file, another version or model, too many tokens for the context,
    /// a token outside the vocabulary, or a file that ends early; the message names the file, the field, its value and
    /// what was expected.</exception>
    public static int[] Read(Stream stream, string name, ReadOnlySpan<byte> modelIdentity, KvCache cache, int vocabSize)
    {
        using var reader = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        byte[] Bytes(int count, string field)
        {
            byte[] bytes = reader.ReadBytes(count);
            if (bytes.Length != count) throw new InvalidDataException($"{name}: the file ends inside its {field} ({bytes.Length} of {count} bytes)");
            return bytes;
        }
        byte[] magic = Bytes(Magic.Length, "magic");
        if (!magic.AsSpan().SequenceEqual(Magic))
            throw new InvalidDataException($"{name}: not a ClockLM slot file (it starts with {Convert.ToHexString(magic)}, expected {Convert.ToHexString(Magic)})");
        uint version = BitConverter.ToUInt32(Bytes(4, "version"));
        if (version != Version) throw new InvalidDataException($"{name}: slot file version {version}; this ClockLM reads version {Version}");
        byte[] identity = Bytes(modelIdentity.Length, "model identity");
        if (!identity.AsSpan().SequenceEqual(modelIdentity))
            throw new InvalidDataException($"{name}: the slot was saved with another model (identity {Convert.ToHexString(identity)[..16]}…, " +
                $"this server's model is {Convert.ToHexString(modelIdentity)[..16]}…)");
        int count = BitConverter.ToInt32(Bytes(4, "token count"));
        if (count < 0 || count > cache.ContextLength)
            throw new InvalidDataException($"{name}: the slot holds {count} tokens; this server's slots hold 0 to {cache.ContextLength}");
        int[] tokens = MemoryMarshal.Cast<byte, int>(Bytes(count * sizeof(int), "token ids")).ToArray();
        foreach (int id in tokens)
            if ((uint)id >= (uint)vocabSize)
                throw new InvalidDataException($"{name}: token id {id} is outside the vocabulary (0..{vocabSize - 1})");
        for (int layer = 0; layer < cache.Layers; layer++)
        {
            ReadRows(reader, cache, layer, count, keys: true, name);
            ReadRows(reader, cache, layer, count, keys: false, name);
        }
        return tokens;
    }

    private static void ReadRows(BinaryReader reader, KvCache cache, int layer, int count, bool keys, string name)
    {
        for (int position = 0; position < count; position++)
        {
            Span<float> row = keys ? cache.Key(layer, position) : cache.Value(layer, position);
            Span<byte> bytes = MemoryMarshal.AsBytes(row);
            if (reader.Read(bytes) != bytes.Length)
                throw new InvalidDataException($"{name}: the file ends inside the {(keys ? "keys" : "values")} of layer {layer}");
        }
    }
}
