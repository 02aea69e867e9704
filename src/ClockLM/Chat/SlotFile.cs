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
/// the KV cache's positions [0, n) as <see cref="KvCache.Write"/> stores them: its header (shape, key and value types:
/// F32, F16 or Q8_0), then per layer the n key rows and the n value rows, as stored
/// </code>
/// A file is restored only into a cache of the same model and the same key and value types.
/// </summary>
public static class SlotFile
{
    /// <summary>The file format's version.</summary>
    public const uint Version = 2;

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
        writer.Flush();
        cache.Write(stream, tokens.Length);
        return stream.Position - start;
    }

    /// <summary>Reads a slot file named <paramref name="name"/> into <paramref name="cache"/> and returns its tokens.
    /// Everything before the keys and values is checked first; the caller forgets the cache's old entries whatever
    /// happens, so a file that ends early leaves no half-restored slot behind.</summary>
    /// <exception cref="InvalidDataException">Not a slot file, another version or model, other KV cache types, too many
    /// tokens for the context, a token outside the vocabulary, or a file that ends early; the message names the file, the
    /// field, its value and what was expected.</exception>
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
        int positions;
        try
        {
            positions = cache.Read(stream);
        }
        catch (InvalidDataException e)
        {
            cache.Truncate(0);
            throw new InvalidDataException($"{name}: {e.Message}", e);
        }
        if (positions != count)
        {
            cache.Truncate(0);
            throw new InvalidDataException($"{name}: the slot holds {count} tokens but the keys and values of {positions} positions");
        }
        return tokens;
    }
}
