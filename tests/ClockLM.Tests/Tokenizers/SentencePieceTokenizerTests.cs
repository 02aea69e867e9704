using System.Text;
using ClockLM.Gguf;
using ClockLM.Tokenizers;

namespace ClockLM.Tests.Tokenizers;

/// <summary>Merge rules, edge cases and GGUF loading errors of the SentencePiece tokenizer.</summary>
public class SentencePieceTokenizerTests
{
    private static readonly SentencePieceTokenizer Llama = SentencePieceVocabFileTests.Load("ggml-vocab-llama-spm.gguf");

    // A toy vocabulary: <unk>, <s>, </s>, then pieces with chosen scores.
    private static SentencePieceTokenizer Toy(params (string Piece, float Score)[] entries)
    {
        string[] pieces = ["<unk>", "<s>", "</s>", .. entries.Select(e => e.Piece)];
        float[] scores = [0, 0, 0, .. entries.Select(e => e.Score)];
        TokenKind[] kinds = [TokenKind.Unknown, TokenKind.Control, TokenKind.Control,
            .. entries.Select(e => e.Piece.StartsWith("<0x") ? TokenKind.Byte : TokenKind.Normal)];
        return new SentencePieceTokenizer(pieces, scores, kinds);
    }

    [Fact]
    public void HighestScoringPairMergesFirst()
    {
        // "▁abc": "bc" (-1) beats "ab" (-2) and "▁a" (-5), although "ab" lies further left; then "▁a" merges.
        var tok = Toy(("▁", -9), ("a", -9), ("b", -9), ("c", -9), ("ab", -2), ("bc", -1), ("▁a", -5));
        Assert.Equal([tok.FindPiece("▁a"), tok.FindPiece("bc")], tok.Encode("abc", addSpecial: false));

        // Without "bc", "ab" is the best pair and "▁ab" is not a piece.
        var noBc = Toy(("▁", -9), ("a", -9), ("b", -9), ("c", -9), ("ab", -2), ("▁a", -5));
        Assert.Equal([noBc.FindPiece("▁"), noBc.FindPiece("ab"), noBc.FindPiece("c")], noBc.Encode("abc", addSpecial: false));
    }

    [Fact]
    public void EqualScoresMergeLeftmostFirst()
    {
        // "aaa" with "aa" in the vocabulary: the left pair merges, leaving "aa" + "a".
        var tok = new SentencePieceTokenizer(["<unk>", "a", "aa"], [0, -1, -1], [TokenKind.Unknown, TokenKind.Normal, TokenKind.Normal],
            bosId: -1, eosId: -1, addBos: false, addSpacePrefix: false);
        Assert.Equal([2, 1], tok.Encode("aaa"));
        Assert.Equal([2, 2, 1], tok.Encode("aaaaa"));
        Assert.Equal("aaaaa", tok.Decode([2, 2, 1]));
    }

    [Fact]
    public void MergesChainIntoLongerPieces()
    {
        var tok = Toy(("▁", -9), ("h", -9), ("e", -9), ("l", -9), ("o", -9), ("he", -3), ("ll", -2), ("hell", -4), ("hello", -1), ("▁hello", -0.5f));
        Assert.Equal([tok.FindPiece("▁hello")], tok.Encode("hello", addSpecial: false));
        // Without the prefix space the chain stops at "hello".
        Assert.Equal([tok.FindPiece("▁"), tok.FindPiece("▁hello")], tok.Encode(" hello", addSpecial: false));
    }

    [Fact]
    public void CharactersWithoutPieceOrByteTokenBecomeUnknown()
    {
        var tok = Toy(("▁", -1), ("a", -1));
        var ids = tok.Encode("aé", addSpecial: false);
        Assert.Equal([tok.FindPiece("▁"), tok.FindPiece("a"), 0, 0], ids); // é = C3 A9: one <unk> per byte
        Assert.Equal("a", tok.Decode(ids)); // <unk> gives no text
    }

    [Fact]
    public void EdgeCases()
    {
        Assert.Empty(Llama.Encode("", addSpecial: false));
        Assert.Equal([259], Llama.Encode(" ", addSpecial: false));                   // "▁▁"
        Assert.Equal([1678], Llama.Encode("  ", addSpecial: false));                 // "▁▁▁"
        Assert.Equal([29871, 13], Llama.Encode("\n", addSpecial: false));            // "▁" + <0x0A>
        Assert.Equal([29871, 13, 13, 13], Llama.Encode("\n\n\n", addSpecial: false));
        foreach (string text in new[] { " ", "     ", "\n", "\n\n \n", "\t \t", new string('a', 1000), new string(' ', 1000),
                     new string('\n', 300), string.Concat(Enumerable.Repeat("ab ", 400)), "😁😁😁", "\u0000x\u0001" })
        {
            var ids = Llama.Encode(text, addSpecial: true);
            Assert.Equal(text, Llama.Decode(ids));
            Assert.Equal(Naive(Llama, text), ids.Skip(1));
        }
    }

    [Fact]
    public void LoneSurrogatesAreEncodedAsReplacementCharacter()
    {
        Assert.Equal(Llama.Encode("a\uFFFDb"), Llama.Encode("a\uD800b"));
        Assert.Equal(Llama.Encode("\uFFFD"), Llama.Encode("\uDC00"));
    }

    [Fact]
    public void LongInputMatchesNaiveMergeAndScalesLinearly()
    {
        // Random text over letters, spaces, punctuation, newlines and a few non-Latin characters.
        var random = new Random(1234);
        const string alphabet = "eeeeettttaaaoooiinnsshhrrdlu      ,.\n'ÄéжЖ中😀";
        var runes = alphabet.EnumerateRunes().ToArray();
        for (int trial = 0; trial < 20; trial++)
        {
            var sb = new StringBuilder();
            int length = random.Next(1, 200);
            for (int i = 0; i < length; i++)
                sb.Append(runes[random.Next(runes.Length)].ToString());
            string text = sb.ToString();
            Assert.Equal(Naive(Llama, text), Llama.Encode(text, addSpecial: false));
        }

        // A long input: 200k characters must encode (a quadratic merge would take minutes) and round-trip.
        var big = new StringBuilder();
        while (big.Length < 200_000)
            big.Append(runes[random.Next(runes.Length)].ToString());
        var ids = Llama.Encode(big.ToString());
        Assert.Equal(big.ToString(), Llama.Decode(ids));
    }

    // An independent, deliberately simple merge in the manner of llama2.c's encoder: start from one token per
    // character (bytes for characters not in the vocabulary are kept as text and spelled at the end), and while any
    // adjacent pair forms a piece, merge the best-scoring one (leftmost on ties). O(n^2) per merge round.
    internal static List<int> Naive(SentencePieceTokenizer tok, string text)
    {
        var symbols = new List<string>();
        string escaped = "▁" + text.Replace(' ', '▁');
        foreach (var rune in escaped.EnumerateRunes())
            symbols.Add(rune.ToString());
        while (true)
        {
            int best = -1;
            float bestScore = float.NegativeInfinity;
            for (int i = 0; i + 1 < symbols.Count; i++)
            {
                int id = tok.FindPiece(symbols[i] + symbols[i + 1]);
                if (id >= 0 && (best < 0 || tok.GetScore(id) > bestScore))
                {
                    best = i;
                    bestScore = tok.GetScore(id);
                }
            }
            if (best < 0)
                break;
            symbols[best] += symbols[best + 1];
            symbols.RemoveAt(best + 1);
        }
        var ids = new List<int>();
        foreach (string s in symbols)
        {
            int id = tok.FindPiece(s);
            if (id >= 0)
                ids.Add(id);
            else
                ids.AddRange(Encoding.UTF8.GetBytes(s).Select(b => tok.FindPiece($"<0x{b:X2}>")));
        }
        return ids;
    }

    [Fact]
    public void ConstructorRejectsInconsistentArrays()
    {
        TokenKind[] kinds = [TokenKind.Unknown, TokenKind.Normal];
        Assert.Contains("1 scores for 2 pieces", Assert.Throws<ArgumentException>(() => new SentencePieceTokenizer(["<unk>", "a"], [0f], kinds)).Message);
        Assert.Contains("1 token kinds for 2 pieces", Assert.Throws<ArgumentException>(() => new SentencePieceTokenizer(["<unk>", "a"], [0f, 0f], kinds[..1])).Message);
        Assert.Contains("bosId is 7", Assert.Throws<ArgumentException>(() => new SentencePieceTokenizer(["<unk>", "a"], [0f, 0f], kinds, bosId: 7)).Message);
        Assert.Contains("endOfGeneration lists id -1", Assert.Throws<ArgumentException>(() =>
            new SentencePieceTokenizer(["<unk>", "a"], [0f, 0f], kinds, bosId: -1, eosId: -1, endOfGeneration: [-1])).Message);
    }

    [Fact]
    public void IdsOutsideTheVocabularyAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Llama.Decode([1, 32000]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Llama.GetPiece(-1));
    }

    // ---- GGUF loading ----

    private static string WriteVocab(TempDir dir, Action<GgufWriter> fill)
    {
        var writer = new GgufWriter();
        writer.Set("general.architecture", "llama");
        writer.Set("tokenizer.ggml.model", "llama");
        fill(writer);
        string path = dir.File("vocab.gguf");
        writer.Write(path);
        return path;
    }

    private static GgufFormatException LoadFails(Action<GgufWriter> fill, string expectedInMessage)
    {
        using var dir = new TempDir();
        string path = WriteVocab(dir, fill);
        using var file = GgufFile.Open(path);
        var e = Assert.Throws<GgufFormatException>(() => SentencePieceTokenizer.FromGguf(file));
        Assert.Equal(path, e.FilePath);
        Assert.Contains(expectedInMessage, e.Message);
        return e;
    }

    private static readonly string[] FivePieces = ["<unk>", "<s>", "</s>", "▁", "a"];

    [Fact]
    public void MissingOrMismatchedArraysAreErrorsNamingTheKey()
    {
        LoadFails(_ => { }, "tokenizer.ggml.tokens is missing");
        LoadFails(w => w.Set("tokenizer.ggml.model", "gpt2"), "tokenizer.ggml.model is 'gpt2'; a SentencePiece vocabulary is 'llama'");
        LoadFails(w => w.Set("tokenizer.ggml.tokens", GgufValue.From(FivePieces))
                        .Set("tokenizer.ggml.scores", GgufValue.From(new float[4])),
            "tokenizer.ggml.scores has 4 entries but tokenizer.ggml.tokens has 5");
        LoadFails(w => w.Set("tokenizer.ggml.tokens", GgufValue.From(FivePieces))
                        .Set("tokenizer.ggml.token_type", GgufValue.From(new int[6])),
            "tokenizer.ggml.token_type has 6 entries but tokenizer.ggml.tokens has 5");
        LoadFails(w => w.Set("tokenizer.ggml.tokens", GgufValue.From(FivePieces))
                        .Set("tokenizer.ggml.scores", GgufValue.From(new int[5])),
            "'tokenizer.ggml.scores' is Array[Int32; 5], expected an array of Single");
        LoadFails(w => w.Set("tokenizer.ggml.tokens", GgufValue.From(FivePieces))
                        .Set("tokenizer.ggml.token_type", GgufValue.From(new[] { 2, 3, 3, 1, 7 })),
            "tokenizer.ggml.token_type[4] (token 'a') is 7; expected 0 to 6");
        LoadFails(w => w.Set("tokenizer.ggml.tokens", GgufValue.From(FivePieces))
                        .Set("tokenizer.ggml.token_type", GgufValue.From(new[] { 2, 3, 3, 1, 6 })),
            "token 4 is a byte token but reads 'a'");
    }

    [Fact]
    public void AbsentKeysTakeLlamaCppDefaults()
    {
        using var dir = new TempDir();
        string path = WriteVocab(dir, w => w.Set("tokenizer.ggml.tokens", GgufValue.From(FivePieces)));
        using var file = GgufFile.Open(path);
        var tok = SentencePieceTokenizer.FromGguf(file);
        Assert.Equal((1, 2, 0, -1), (tok.BosId, tok.EosId, tok.UnknownId, tok.PaddingId));
        Assert.Equal((true, false, true), (tok.AddBos, tok.AddEos, tok.AddSpacePrefix));
        Assert.All(new[] { 0, 1, 3, 4 }, id => Assert.Equal(TokenKind.Normal, tok.GetKind(id)));
        // "</s>" is spelled like an end of turn, which llama.cpp makes a control token whatever the file says.
        Assert.Equal(TokenKind.Control, tok.GetKind(2));
        Assert.Equal([2], tok.EndOfGenerationIds);
        Assert.Equal(0f, tok.GetScore(4));
        // Through the factory on Tokenizer as well.
        Assert.IsType<SentencePieceTokenizer>(Tokenizer.Load(file));
    }

    [Fact]
    public void FlagsFromGgufAreObeyed()
    {
        using var dir = new TempDir();
        string path = WriteVocab(dir, w => w.Set("tokenizer.ggml.tokens", GgufValue.From(FivePieces))
            .Set("tokenizer.ggml.token_type", GgufValue.From(new[] { 2, 3, 3, 1, 1 }))
            .Set("tokenizer.ggml.add_bos_token", false)
            .Set("tokenizer.ggml.add_eos_token", true)
            .Set("tokenizer.ggml.add_space_prefix", false));
        using var file = GgufFile.Open(path);
        var tok = SentencePieceTokenizer.FromGguf(file);
        Assert.Equal([4, 3, 4, 2], tok.Encode("a a"));  // no BOS, no prefix space, EOS last
        Assert.Equal(" a", tok.Decode([3, 4]));          // and no space dropped when decoding
    }
}
