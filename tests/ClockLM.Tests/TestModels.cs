using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tensors;
using ClockLM.Tokenizers;

namespace ClockLM.Tests;

/// <summary>Small model files the tests write themselves.</summary>
public static class TestModels
{
    /// <summary>A SentencePiece vocabulary of <paramref name="size"/> entries: unk, BOS, EOS, the 256 byte tokens when
    /// there is room, then letters and short words.</summary>
    public static SentencePieceTokenizer SmallVocabulary(int size)
    {
        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        var kinds = new List<TokenKind> { TokenKind.Unknown, TokenKind.Control, TokenKind.Control };
        if (size >= 3 + 256 + 8)
            for (int b = 0; b < 256; b++) { pieces.Add($"<0x{b:X2}>"); kinds.Add(TokenKind.Byte); }
        foreach (string w in new[] { "▁", "e", "t", "a", "o", "n", "▁the", "▁a", "s", "h", "r", "d", "l", "u", "▁to", "▁and" })
        {
            if (pieces.Count == size) break;
            pieces.Add(w); kinds.Add(TokenKind.Normal);
        }
        for (int i = 0; pieces.Count < size; i++) { pieces.Add($"▁w{i}"); kinds.Add(TokenKind.Normal); }
        var scores = pieces.Select((_, i) => -(float)i).ToList();
        return new SentencePieceTokenizer(pieces, scores, kinds);
    }

    /// <summary>Writes a random-weight llama GGUF: weights N(0, std), norms 1, every matrix in <paramref name="type"/>.</summary>
    public static void WriteRandomLlama(string path, LlamaConfig config, SentencePieceTokenizer vocab, GgmlType type,
        ulong seed = 1, bool separateOutput = true, float std = 0.02f) =>
        WriteRandomLlama(path, config, vocab, QuantizationScheme.Parse(type.ToString()), seed, separateOutput, std);

    /// <summary>Writes a random-weight llama GGUF with the types a quantization scheme picks.</summary>
    public static void WriteRandomLlama(string path, LlamaConfig config, SentencePieceTokenizer vocab, QuantizationScheme scheme,
        ulong seed = 1, bool separateOutput = true, float std = 0.02f) =>
        SyntheticModel.Write(path, config, separateOutput, vocab, scheme, seed, std);

    /// <summary>A small random llama GGUF (dim 64, 2 layers, context 64, the 300-entry test vocabulary, F32).</summary>
    public static void WriteSmallLlama(string path, ulong seed = 1) =>
        WriteRandomLlama(path, new LlamaConfig(64, 128, 2, 4, 2, 300, 64), SmallVocabulary(300), GgmlType.F32, seed);

    /// <summary>Copies a GGUF file, letting <paramref name="metadata"/> add or replace keys and <paramref name="tensor"/>
    /// replace a tensor's bytes (return null to drop the tensor).</summary>
    public static void CopyGguf(string from, string to, Action<GgufWriter>? metadata = null, Func<GgufTensorInfo, byte[], byte[]?>? tensor = null)
    {
        using var file = GgufFile.Open(from);
        var writer = new GgufWriter().CopyMetadata(file, _ => true);
        metadata?.Invoke(writer);
        foreach (var t in file.Tensors)
        {
            byte[]? data = file.GetTensorData(t).ToArray();
            if (tensor is not null) data = tensor(t, data);
            if (data is not null) writer.AddTensor(t.Name, t.Type, t.Dimensions.ToArray(), data);
        }
        writer.Write(to);
    }

    /// <summary>A copy of a model with NaN in the final norm's weights, so every logit is NaN.</summary>
    public static void WriteNaNNorm(string from, string to) =>
        CopyGguf(from, to, tensor: (t, data) =>
        {
            if (t.Name == "output_norm.weight")
                for (int i = 0; i < data.Length; i += 4) System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i), float.NaN);
            return data;
        });
}
