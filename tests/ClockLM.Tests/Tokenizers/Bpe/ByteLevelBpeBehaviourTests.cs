using System.Text;
using ClockLM.Gguf;
using ClockLM.Tokenizers;

namespace ClockLM.Tests.Tokenizers.Bpe;

/// <summary>Byte-level BPE beyond the llama.cpp test files: round trips, special tokens, flags, long inputs, errors.</summary>
public sealed class ByteLevelBpeBehaviourTests
{
    private static ByteLevelBpeTokenizer Load(string vocab) => Assert.IsType<ByteLevelBpeTokenizer>(SharedTokenizers.Get(vocab));

    [Theory]
    [MemberData(nameof(SharedTokenizers.ByteLevelBpe), MemberType = typeof(SharedTokenizers))]
    public void DecodeOfEncodeGivesTheTextBack(string vocab)
    {
        var tokenizer = Load(vocab);
        var random = new Random(vocab.Length);
        var texts = Enumerable.Range(0, 300).Select(_ => RandomText.Next(random))
            .Concat(VocabTestCases.Read(SharedData.Vocab($"ggml-vocab-{vocab}.gguf")).Select(c => c.Input));
        foreach (string text in texts)
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text, addSpecial: false)));
    }

    [Fact]
    public void ControlTokenInTextNeedsParseSpecialAndDecodesToNothing()
    {
        var tokenizer = Load("gpt-2");
        const string text = "Hi<|endoftext|>there";
        List<int> literal = tokenizer.Encode(text, addSpecial: false, parseSpecial: false);
        List<int> parsed = tokenizer.Encode(text, addSpecial: false, parseSpecial: true);

        Assert.DoesNotContain(50256, literal);
        Assert.Equal(text, tokenizer.Decode(literal));
        Assert.Equal([.. tokenizer.Encode("Hi", false), 50256, .. tokenizer.Encode("there", false)], parsed);
        Assert.Equal(TokenKind.Control, tokenizer.GetKind(50256));
        Assert.Equal("Hithere", tokenizer.Decode(parsed));
    }

    [Fact]
    public void UserDefinedTokensAreAlwaysCutOutAndDecodeToTheirText()
    {
        // MPT's vocabulary has user-defined entries for runs of 2..24 spaces; llama.cpp matches them even
        // without parseSpecial, longest first.
        var tokenizer = Load("mpt");
        int threeSpaces = tokenizer.FindPiece("   ");
        Assert.Equal(TokenKind.UserDefined, tokenizer.GetKind(threeSpaces));
        List<int> ids = tokenizer.Encode("a   b", addSpecial: false, parseSpecial: false);
        Assert.Contains(threeSpaces, ids);
        Assert.Equal("a   b", tokenizer.Decode(ids));
    }

    [Fact]
    public void FimMarkersLeftUserDefinedBecomeControl()
    {
        // deepseek-coder's file stores <｜fim▁begin｜> as user-defined; llama.cpp makes it control, so it is
        // not cut out of plain text and decodes to nothing.
        var tokenizer = Load("deepseek-coder");
        int fim = tokenizer.FindPiece("<｜fim▁begin｜>");
        Assert.Equal(TokenKind.Control, tokenizer.GetKind(fim));
        Assert.DoesNotContain(fim, tokenizer.Encode("x<｜fim▁begin｜>y", addSpecial: false));
        Assert.Contains(fim, tokenizer.Encode("x<｜fim▁begin｜>y", addSpecial: false, parseSpecial: true));
        Assert.Equal("", tokenizer.Decode([fim]));
    }

    [Fact]
    public void AddSpecialFollowsTheFileFlags()
    {
        var coder = Load("deepseek-coder"); // add_bos_token = true, add_eos_token = false
        Assert.True(coder.AddBos);
        Assert.False(coder.AddEos);
        Assert.Equal([coder.BosId, .. coder.Encode("hi", addSpecial: false)], coder.Encode("hi", addSpecial: true));

        var gpt2 = Load("gpt-2"); // no flags: GPT-2 adds nothing
        Assert.False(gpt2.AddBos);
        Assert.Equal(gpt2.Encode("hi", addSpecial: false), gpt2.Encode("hi", addSpecial: true));
        Assert.Equal(50256, gpt2.BosId);
        Assert.Equal(50256, gpt2.EosId);
    }

    [Fact]
    public void LongInputEncodesLikeItsWordsAndRoundTrips()
    {
        // 200k characters, including a 50k-letter word and a 20k-space run: merging and splitting stay linear
        // enough to finish quickly, and the result is the per-piece encoding concatenated.
        var tokenizer = Load("gpt-2");
        var random = new Random(7);
        var sb = new StringBuilder();
        while (sb.Length < 120_000)
            sb.Append(RandomText.Next(random));
        string longWord = string.Concat(Enumerable.Repeat("abcdefghij", 5_000));
        string spaces = new(' ', 20_000);
        string text = sb + "\n" + longWord + "\n" + spaces + "x";

        List<int> ids = tokenizer.Encode(text, addSpecial: false);
        Assert.Equal(text, tokenizer.Decode(ids));
        List<int> wordIds = tokenizer.Encode(longWord, addSpecial: false);
        Assert.True(wordIds.Count < longWord.Length / 2, $"{wordIds.Count} ids for the long word: merges did not happen");
        Assert.Equal(wordIds, tokenizer.Encode("\n" + longWord, addSpecial: false)[1..]);
    }

    [Fact]
    public void OutOfRangeIdThrows()
    {
        var tokenizer = Load("gpt-2");
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.GetPiece(tokenizer.VocabSize));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([-1]));
    }

    [Fact]
    public void UnknownPreTokenizerIsAFormatErrorNamingTheValue()
    {
        using var temp = new TempDir();
        string path = temp.File("bad-pre.gguf");
        using (var source = GgufFile.Open(SharedData.Vocab("ggml-vocab-gpt-2.gguf")))
        {
            var writer = new GgufWriter();
            foreach (string key in source.MetadataKeys)
                writer.Set(key, key == "tokenizer.ggml.pre" ? GgufValue.From("no-such-split") : source.Metadata[key]);
            writer.Write(path);
        }
        using var file = GgufFile.Open(path);
        var error = Assert.Throws<GgufFormatException>(() => ByteLevelBpeTokenizer.FromGguf(file));
        Assert.Contains("no-such-split", error.Message);
        Assert.Contains("tokenizer.ggml.pre", error.Message);
    }
}
