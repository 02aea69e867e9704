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

    /// <summary>Writes a random-weight llama GGUF: weights N(0, std), norms 1.</summary>
    public static void WriteRandomLlama(string path, LlamaConfig config, SentencePieceTokenizer vocab, GgmlType type,
        ulong seed = 1, bool separateOutput = true, float std = 0.02f)
    {
        LlamaGgufExport.Write(path, "random", config, vocab, separateOutput, _ => type, (name, row, destination) =>
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) { destination.Fill(1.0f); return; }
            // Each row gets its own deterministic stream, so the weights do not depend on the order rows are written.
            var rng = new Gaussian(seed ^ StableHash(name) * 0x9E3779B97F4A7C15UL ^ (ulong)row * 0xD1B54A32D192ED03UL);
            for (int i = 0; i < destination.Length; i++) destination[i] = std * rng.Next();
        });
    }

    /// <summary>FNV-1a of a string: the same in every process (string.GetHashCode is not).</summary>
    public static ulong StableHash(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in s) { h ^= c; h *= 1099511628211UL; }
        return h;
    }

    /// <summary>Deterministic standard normal samples (xorshift64* and Box-Muller).</summary>
    public sealed class Gaussian(ulong seed)
    {
        private ulong _state = seed == 0 ? 0x853C49E6748FEA9BUL : seed;
        private float? _spare;

        public float Next()
        {
            if (_spare is { } s) { _spare = null; return s; }
            double u1 = (NextBits() + 1.0) / 9007199254740993.0, u2 = NextBits() / 9007199254740992.0;
            double r = Math.Sqrt(-2 * Math.Log(u1));
            _spare = (float)(r * Math.Sin(2 * Math.PI * u2));
            return (float)(r * Math.Cos(2 * Math.PI * u2));
        }

        private ulong NextBits()
        {
            _state ^= _state >> 12; _state ^= _state << 25; _state ^= _state >> 27;
            return (_state * 0x2545F4914F6CDD1DUL) >> 11;
        }
    }
}
