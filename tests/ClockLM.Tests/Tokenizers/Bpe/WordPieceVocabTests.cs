using ClockLM.Gguf;
using ClockLM.Tokenizers;
using Xunit.Abstractions;

namespace ClockLM.Tests.Tokenizers.Bpe;

/// <summary>WordPiece against llama.cpp's BERT (bge) tokenizer test file, plus the behaviour around it.</summary>
public sealed class WordPieceVocabTests(ITestOutputHelper output)
{
    private static readonly string BertPath = SharedData.Vocab("ggml-vocab-bert-bge.gguf");

    private static WordPieceTokenizer Load() => Assert.IsType<WordPieceTokenizer>(SharedTokenizers.Get("bert-bge"));

    [Fact]
    public void EveryCaseMatchesLlamaCpp()
    {
        var tokenizer = Load();
        var (passed, total, failures) = VocabTestCases.Check(BertPath, s => tokenizer.Encode(s, addSpecial: false, parseSpecial: false));
        output.WriteLine($"bert-bge: {passed}/{total} cases");
        Assert.True(total >= 40, $"only {total} cases read");
        Assert.True(passed == total, $"bert-bge: {passed}/{total} cases\n{failures}");
    }

    [Fact]
    public void AddSpecialWrapsInClsAndSep()
    {
        var tokenizer = Load();
        List<int> plain = tokenizer.Encode("Hello world", addSpecial: false);
        List<int> wrapped = tokenizer.Encode("Hello world", addSpecial: true);
        Assert.Equal("[CLS]", tokenizer.GetPiece(wrapped[0]));
        Assert.Equal("[SEP]", tokenizer.GetPiece(wrapped[^1]));
        Assert.Equal(plain, wrapped[1..^1]);
        Assert.Equal(["▁hello", "▁world"], plain.Select(tokenizer.GetPiece));
    }

    [Fact]
    public void NormalisationLowercasesStripsAccentsAndSplitsPunctuation()
    {
        Assert.Equal(["fuhrer", ",", "cafe", "naive", "!"], WordPieceTokenizer.NormalizedWords("Führer, CAFÉ naïve!"));
        // Control and format characters and combining marks vanish; CJK ideographs stand alone.
        Assert.Equal(["ab", "我", "想"], WordPieceTokenizer.NormalizedWords("a\u200Db我想"));
        Assert.Equal(["cafe", "xy", "हनद"], WordPieceTokenizer.NormalizedWords("cafe\u0301 x\uFE0Fy हिन्दी"));
    }

    [Fact]
    public void UncoverableWordBecomesOneUnknown()
    {
        var tokenizer = Load();
        // U+1F999 is not in the vocabulary, so the whole word "x🦙y" is one [UNK] and its neighbours are unaffected.
        List<int> ids = tokenizer.Encode("hi x\U0001F999y there", addSpecial: false);
        Assert.Equal(["▁hi", "[UNK]", "▁there"], ids.Select(tokenizer.GetPiece));
    }

    [Fact]
    public void ContinuationPiecesDecodeWithoutSpaces()
    {
        var tokenizer = Load();
        List<int> ids = tokenizer.Encode("unaffable tokenization", addSpecial: true);
        Assert.True(ids.Count > 4, "expected the words to need continuation pieces");
        Assert.Equal(" unaffable tokenization", tokenizer.Decode(ids));
    }

    [Fact]
    public void SpecialTokensInTextNeedParseSpecial()
    {
        var tokenizer = Load();
        List<int> literal = tokenizer.Encode("a [MASK] b", addSpecial: false, parseSpecial: false);
        List<int> parsed = tokenizer.Encode("a [MASK] b", addSpecial: false, parseSpecial: true);
        Assert.Equal(["▁a", "▁[", "▁mask", "▁]", "▁b"], literal.Select(tokenizer.GetPiece));
        Assert.Equal(["▁a", "[MASK]", "▁b"], parsed.Select(tokenizer.GetPiece));
    }
}
