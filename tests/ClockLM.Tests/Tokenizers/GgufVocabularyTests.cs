using ClockLM.Gguf;
using ClockLM.Tokenizers;

namespace ClockLM.Tests.Tokenizers;

/// <summary>One vocabulary reader for SentencePiece, byte-level BPE and WordPiece: the same keys give the same
/// special ids, kinds, end-of-generation set and fallbacks whatever the tokenizer; vocabulary-only files load.</summary>
public sealed class GgufVocabularyTests
{
    // Entries every type can hold; the chat markers are left "normal", as some converters leave them.
    private static readonly string[] Pieces = ["<unk>", "<s>", "</s>", "<|im_end|>", "<|eot_id|>", "<|fim_pad|>", "a", "b", "ab", "▁a", "[UNK]"];
    private static readonly int[] Types = [2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 2];

    private static string Write(TempDir dir, string model, Action<GgufWriter>? extra = null)
    {
        var writer = new GgufWriter()
            .Set("general.architecture", "llama")
            .Set("tokenizer.ggml.model", model)
            .Set("tokenizer.ggml.tokens", GgufValue.From(Pieces))
            .Set("tokenizer.ggml.token_type", GgufValue.From(Types))
            .Set("tokenizer.ggml.bos_token_id", 1u)
            .Set("tokenizer.ggml.eos_token_id", 2u)
            .Set("tokenizer.ggml.unknown_token_id", 0u)
            .Set("tokenizer.ggml.padding_token_id", 99u);   // outside the vocabulary: the default is kept, with a warning
        if (model == "gpt2") writer.Set("tokenizer.ggml.merges", GgufValue.From(new[] { "a b" }));
        extra?.Invoke(writer);
        string path = dir.File($"{model}.gguf");
        writer.Write(path);
        return path;
    }

    private static Tokenizer Load(string path)
    {
        using var file = GgufFile.Open(path);
        return Tokenizer.Load(file);
    }

    [Fact]
    public void TheThreeTokenizersAgreeOnSpecialIdsKindsAndEndOfGeneration()
    {
        using var dir = new TempDir();
        var tokenizers = new[] { "llama", "gpt2", "bert" }.Select(model => Load(Write(dir, model))).ToArray();
        Assert.IsType<SentencePieceTokenizer>(tokenizers[0]);
        Assert.IsType<ByteLevelBpeTokenizer>(tokenizers[1]);
        Assert.IsType<WordPieceTokenizer>(tokenizers[2]);
        foreach (var t in tokenizers)
        {
            Assert.Equal((1, 2), (t.BosId, t.EosId));
            // EOS, the end-of-turn spellings and the fill-in-the-middle pad end generation; nothing else does.
            Assert.Equal([2, 3, 4, 5], t.EndOfGenerationIds.Order());
            Assert.All(Enumerable.Range(0, Pieces.Length), id => Assert.Equal(t.IsEndOfGeneration(id), id is 2 or 3 or 4 or 5));
            // Markers spelled as such become control tokens.
            Assert.Equal([TokenKind.Unknown, TokenKind.Control, TokenKind.Control, TokenKind.Control, TokenKind.Control, TokenKind.Control,
                TokenKind.Normal, TokenKind.Normal, TokenKind.Normal, TokenKind.Normal, TokenKind.Unknown],
                Enumerable.Range(0, Pieces.Length).Select(t.GetKind));
            var warning = Assert.Single(t.LoadWarnings);
            Assert.Contains("tokenizer.ggml.padding_token_id is 99, outside the vocabulary of 11 entries", warning);
        }
        Assert.Equal(-1, ((SentencePieceTokenizer)tokenizers[0]).PaddingId);
        Assert.Equal(-1, ((ByteLevelBpeTokenizer)tokenizers[1]).PaddingId);
        Assert.Equal(0, ((WordPieceTokenizer)tokenizers[2]).PaddingId); // WordPiece's default [PAD] is 0
    }

    [Fact]
    public void AnEndOfTurnIdFromTheFileEndsGenerationForAll()
    {
        using var dir = new TempDir();
        foreach (string model in new[] { "llama", "gpt2", "bert" })
        {
            var t = Load(Write(dir, model, w => w.Set("tokenizer.ggml.eot_token_id", 7u)));
            Assert.True(t.IsEndOfGeneration(7), model);
            Assert.False(t.IsEndOfGeneration(6), model);
        }
    }

    [Fact]
    public void TokenTypesOutsideLlamaCppsEnumAreRejectedForAll()
    {
        using var dir = new TempDir();
        foreach (string model in new[] { "llama", "gpt2", "bert" })
        {
            string path = Write(dir, model, w => w.Set("tokenizer.ggml.token_type", GgufValue.From(new[] { 2, 3, 3, 1, 1, 1, 1, 1, 1, -4, 2 })));
            var e = Assert.Throws<GgufFormatException>(() => Load(path));
            Assert.Contains("tokenizer.ggml.token_type[9] (token '▁a') is -4; expected 0 to 6", e.Message);
        }
    }
}
