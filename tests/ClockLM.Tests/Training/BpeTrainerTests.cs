using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tokenizers;
using ClockLM.Training;

namespace ClockLM.Tests.Training;

public class BpeTrainerTests
{
    private static readonly string[] Lines = ["the cat sat on the mat", "the cat ate the rat", "a rat sat on a hat", "the hat"];

    [Fact]
    public void VocabularyStartsWithSpecialAndByteTokens()
    {
        var tokenizer = BpeTrainer.Train(Lines, 300);
        Assert.Equal(("<unk>", TokenKind.Unknown), (tokenizer.GetPiece(0), tokenizer.GetKind(0)));
        Assert.Equal(("<s>", TokenKind.Control), (tokenizer.GetPiece(1), tokenizer.GetKind(1)));
        Assert.Equal(("</s>", TokenKind.Control), (tokenizer.GetPiece(2), tokenizer.GetKind(2)));
        for (int b = 0; b < 256; b++)
            Assert.Equal(($"<0x{b:X2}>", TokenKind.Byte), (tokenizer.GetPiece(3 + b), tokenizer.GetKind(3 + b)));
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal(2, tokenizer.EosId);
        Assert.True(tokenizer.AddSpacePrefix);
    }

    [Fact]
    public void FirstMergeIsTheMostFrequentPairAndScoresFallWithMergeOrder()
    {
        var tokenizer = BpeTrainer.Train(Lines, 300, minCharCount: 1);
        // Words: ▁the ×5, ▁cat ×2, ▁sat ×2, ▁on ×2, ▁rat ×2, ▁hat ×2, ▁a ×2 ... counted by hand, the pairs "a"+"t"
        // (▁c-at, ▁s-at ×2, ▁m-at, ▁r-at ×2, ▁h-at ×2, ▁at-e: 9) beat "▁"+"t" (▁the ×5) and "t"+"h" (5).
        int firstMerge = BpeTrainer.MinimumVocabSize + CountCharacters(Lines);
        Assert.Equal("at", tokenizer.GetPiece(firstMerge));
        for (int id = firstMerge + 1; id < tokenizer.VocabSize; id++)
            Assert.True(tokenizer.GetScore(id) < tokenizer.GetScore(id - 1));
        // The whole frequent words became single pieces.
        Assert.True(tokenizer.FindPiece("▁the") > 0);
        Assert.Equal([tokenizer.FindPiece("▁the"), tokenizer.FindPiece("▁cat")], tokenizer.Encode("the cat", addSpecial: false));
    }

    [Fact]
    public void EncodingRoundTripsAndUnknownCharactersFallBackToBytes()
    {
        var tokenizer = BpeTrainer.Train(Lines, 280);
        var ids = tokenizer.Encode("the cat sat on é", addSpecial: true);
        Assert.Equal(BpeTrainer.BosId, ids[0]);
        // é (U+00E9) is not in the corpus: its UTF-8 bytes C3 A9 come out as byte tokens.
        Assert.Equal([3 + 0xC3, 3 + 0xA9], ids.TakeLast(2));
        Assert.Equal("the cat sat on é", tokenizer.Decode(ids));
    }

    [Fact]
    public void StopsWhenNoPairRepeats()
    {
        var tokenizer = BpeTrainer.Train(["ab ab"], 1000);
        // Characters ▁, a, b; merges ▁a then ▁ab; then no pair is left.
        Assert.Equal(BpeTrainer.MinimumVocabSize + 5, tokenizer.VocabSize);
        Assert.Equal("▁ab", tokenizer.GetPiece(tokenizer.VocabSize - 1));
    }

    [Fact]
    public void TheVocabularySurvivesAGgufRoundTrip()
    {
        var tokenizer = BpeTrainer.Train(TrainingCorpus.Lines(TinyCorpus.Text()), 400);
        using var dir = new TempDir();
        string path = dir.File("vocab.gguf");
        var writer = new GgufWriter();
        writer.Set("general.architecture", "llama");
        LlamaGgufExport.AddTokenizer(writer, tokenizer);
        writer.Write(path);
        using var file = GgufFile.Open(path);
        var loaded = Tokenizer.Load(file);
        const string text = "and the king went up to the city, and it was good.\nand the prophet dwelt in egypt";
        Assert.Equal(tokenizer.Encode(text), loaded.Encode(text));
        Assert.True(tokenizer.Encode(text).Count < text.Length / 3, $"{tokenizer.Encode(text).Count} tokens"); // whole words are pieces
    }

    private static int CountCharacters(IEnumerable<string> lines) =>
        lines.SelectMany(l => ("▁" + l.Replace(' ', '▁')).ToCharArray()).Distinct().Count();

    [Fact]
    public void RejectsAVocabularyTooSmallForTheByteTokens()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => BpeTrainer.Train(Lines, 100));
        Assert.Contains("259", e.Message);
    }
}
