using ClockLM.Gguf;
using ClockLM.Tokenizers;

namespace ClockLM.Tests.Tokenizers;

/// <summary>The SentencePiece tokenizer against llama.cpp's own test vocabularies and expected ids.</summary>
public class SentencePieceVocabFileTests
{
    public static TheoryData<string> SpmVocabs => ["ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf"];

    internal static SentencePieceTokenizer Load(string name)
    {
        using var file = GgufFile.Open(SharedData.Vocab(name));
        return SentencePieceTokenizer.FromGguf(file);
    }

    [Theory]
    [MemberData(nameof(SpmVocabs))]
    public void EncodesEveryLlamaCppTestCaseExactly(string name)
    {
        var tokenizer = Load(name);
        var cases = VocabTestFile.Read(SharedData.Vocab(name));
        Assert.Equal(46, cases.Count);

        var failures = new List<string>();
        foreach (var c in cases)
        {
            var ids = tokenizer.Encode(c.Input, addSpecial: false, parseSpecial: false);
            if (!ids.SequenceEqual(c.Ids))
                failures.Add($"'{c.Input}': expected [{string.Join(' ', c.Ids)}], got [{string.Join(' ', ids)}]");
        }
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Theory]
    [MemberData(nameof(SpmVocabs))]
    public void DecodingTheExpectedIdsGivesBackEveryInput(string name)
    {
        var tokenizer = Load(name);
        foreach (var c in VocabTestFile.Read(SharedData.Vocab(name)))
            Assert.Equal(c.Input, tokenizer.Decode(c.Ids));
    }

    [Theory]
    [MemberData(nameof(SpmVocabs))]
    public void AddSpecialPutsBosFirstAndNoEos(string name)
    {
        var tokenizer = Load(name);
        var plain = tokenizer.Encode("Hello world", addSpecial: false);
        var withBos = tokenizer.Encode("Hello world", addSpecial: true);
        Assert.Equal([1, .. plain], withBos);
        Assert.Equal([1], tokenizer.Encode("", addSpecial: true));
        Assert.Empty(tokenizer.Encode("", addSpecial: false));
        // BOS is a control token: it gives no text, and the prefix space after it is dropped.
        Assert.Equal("Hello world", tokenizer.Decode(withBos));
    }

    [Fact]
    public void ReadsMetadataAsLlamaCppDoes()
    {
        var llama = Load("ggml-vocab-llama-spm.gguf");
        Assert.Equal(32000, llama.VocabSize);
        Assert.Equal((1, 2, 0, -1), (llama.BosId, llama.EosId, llama.UnknownId, llama.PaddingId));
        Assert.True(llama.AddBos);
        Assert.False(llama.AddEos);
        Assert.True(llama.AddSpacePrefix);
        Assert.Equal(TokenKind.Unknown, llama.GetKind(0));
        Assert.Equal(TokenKind.Control, llama.GetKind(1));
        Assert.Equal(TokenKind.Byte, llama.GetKind(3 + 0x0A));
        Assert.Equal("<0x0A>", llama.GetPiece(13));
        Assert.Equal("▁Hello", llama.GetPiece(15043));
        Assert.Equal(15043, llama.FindPiece("▁Hello"));

        var phi3 = Load("ggml-vocab-phi-3.gguf");
        Assert.Equal(32064, phi3.VocabSize);
        Assert.Equal((1, 32000, 0, 32000), (phi3.BosId, phi3.EosId, phi3.UnknownId, phi3.PaddingId));
        Assert.Equal("<|endoftext|>", phi3.GetPiece(32000));
        Assert.Equal(-1000f, phi3.GetScore(32000));
    }

    [Fact]
    public void ControlTokensInTextAreSplitOnlyWithParseSpecial()
    {
        var tokenizer = Load("ggml-vocab-llama-spm.gguf");
        var literal = tokenizer.Encode("a<s>b", addSpecial: false, parseSpecial: false);
        var parsed = tokenizer.Encode("a<s>b", addSpecial: false, parseSpecial: true);

        Assert.DoesNotContain(1, literal);
        Assert.Equal("a<s>b", tokenizer.Decode(literal));
        // Split around <s>: "▁a", BOS, then "b" as a new text that gets its own prefix space.
        Assert.Equal([.. tokenizer.Encode("a", false), 1, .. tokenizer.Encode("b", false)], parsed);
        Assert.Equal(tokenizer.FindPiece("▁b"), parsed[^1]);
        // BOS gives no text, and the prefix space added after it is dropped again.
        Assert.Equal("ab", tokenizer.Decode(parsed));
    }

    [Fact]
    public void Phi3ChatTokensAreSplitAndSwallowTheWhitespaceAfterThem()
    {
        var tokenizer = Load("ggml-vocab-phi-3.gguf");
        int user = tokenizer.FindPiece("<|user|>"), end = tokenizer.FindPiece("<|end|>");
        Assert.Equal(TokenKind.Control, tokenizer.GetKind(user));

        var ids = tokenizer.Encode("<|user|>\nHi<|end|>\n", addSpecial: true, parseSpecial: true);
        // The newline after each chat token is stripped (llama.cpp's rstrip for Phi-3), "Hi" gets the prefix space.
        Assert.Equal([1, user, tokenizer.FindPiece("▁Hi"), end], ids);

        // </s> is user-defined in this file, but llama.cpp takes its spelling for an end of turn and makes it a
        // control token: split out (swallowing the spaces after it) only with parseSpecial, and an end of generation.
        int eosText = tokenizer.FindPiece("</s>");
        Assert.Equal(TokenKind.Control, tokenizer.GetKind(eosText));
        Assert.Equal([.. tokenizer.Encode("x", false), eosText, tokenizer.FindPiece("▁y")],
            tokenizer.Encode("x</s>  y", addSpecial: false, parseSpecial: true));
        Assert.DoesNotContain(eosText, tokenizer.Encode("x</s>  y", addSpecial: false, parseSpecial: false));
        Assert.Equal([eosText, 32000, end], tokenizer.EndOfGenerationIds.Order());
    }

    [Fact]
    public void EndOfGenerationIsEosForLlama()
    {
        var tokenizer = Load("ggml-vocab-llama-spm.gguf");
        Assert.Equal([2], tokenizer.EndOfGenerationIds);
        Assert.True(tokenizer.IsEndOfGeneration(2));
        Assert.False(tokenizer.IsEndOfGeneration(1));
    }
}
