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
}
