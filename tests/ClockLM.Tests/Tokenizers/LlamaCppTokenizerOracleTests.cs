using System.Text;
using ClockLM.Tokenizers;
using LLama;
using LLama.Common;
using LLama.Native;

namespace ClockLM.Tests.Tokenizers;

/// <summary>
/// The SentencePiece tokenizer against llama.cpp itself (through LLamaSharp, vocabulary only) on generated text:
/// random mixes of letters, spaces, newlines, digits, punctuation, multi-byte characters and special-token text.
/// </summary>
public class LlamaCppTokenizerOracleTests
{
    private static readonly string[] Fragments =
    [
        "a", "e", "t", "the", "The", "ing", " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", ".", ",", "!", "?", "'", "\"",
        "0", "1", "33", "2024", "-", "_", "(", ")", "<", ">", "/", "\\", "{", "}", "é", "ü", "ß", "ж", "Ω", "中", "文",
        "日本", "한", "ก", "ល", "😀", "🦙", "👍🏽", "❤️", "\u200b", "\u00a0", "½", "™", "…", "Hello", " world", "<s>", "</s>",
        "<unk>", "<|user|>", "<|end|>", "<|endoftext|>", "<0x0A>", "▁", "▁▁", "[PAD32011]", "\u0000", "\u007f", "ﬁ",
    ];

    public static TheoryData<string> Vocabs => ["ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf"];

    [Theory]
    [MemberData(nameof(Vocabs))]
    public void MatchesLlamaCppOnGeneratedText(string name)
    {
        var ours = SentencePieceVocabFileTests.Load(name);
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(SharedData.Vocab(name)) { VocabOnly = true });

        var random = new Random(name.Length * 7919);
        var failures = new List<string>();
        for (int trial = 0; trial < 400 && failures.Count < 10; trial++)
        {
            var sb = new StringBuilder();
            int parts = random.Next(0, 12);
            for (int i = 0; i < parts; i++)
                sb.Append(Fragments[random.Next(Fragments.Length)]);
            string text = sb.ToString();
            bool addSpecial = random.Next(2) == 0, parseSpecial = random.Next(2) == 0;

            int[] expected = weights.Tokenize(text, addSpecial, parseSpecial, Encoding.UTF8).Select(t => (int)t).ToArray();
            var actual = ours.Encode(text, addSpecial, parseSpecial);
            if (!actual.SequenceEqual(expected))
                failures.Add($"'{Escape(text)}' addSpecial={addSpecial} parseSpecial={parseSpecial}: llama.cpp [{string.Join(' ', expected)}], ClockLM [{string.Join(' ', actual)}]");
        }
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Theory]
    [MemberData(nameof(Vocabs))]
    public void KindsAndEndOfGenerationMatchLlamaCpp(string name)
    {
        var ours = SentencePieceVocabFileTests.Load(name);
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(SharedData.Vocab(name)) { VocabOnly = true });
        Assert.Equal(weights.Vocab.Count, ours.VocabSize);
        Assert.Equal((int?)weights.Vocab.BOS, ours.BosId);
        Assert.Equal((int?)weights.Vocab.EOS, ours.EosId);
        for (int id = 0; id < ours.VocabSize; id++)
        {
            var token = (LLamaToken)id;
            Assert.True(token.IsControl(weights.Vocab) == (ours.GetKind(id) == TokenKind.Control), $"control kind of {id} '{ours.GetPiece(id)}'");
            Assert.True(token.IsEndOfGeneration(weights.Vocab) == ours.IsEndOfGeneration(id), $"end of generation for {id} '{ours.GetPiece(id)}'");
        }
    }

    [Theory]
    [MemberData(nameof(Vocabs))]
    public void DecodingMatchesLlamaCppPieceByPiece(string name)
    {
        // llama.cpp's detokenize drops one leading space from the first token only; for sequences that do not start
        // with BOS that is ClockLM's rule too (ClockLM also drops it after BOS, as llama2.c does).
        var ours = SentencePieceVocabFileTests.Load(name);
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(SharedData.Vocab(name)) { VocabOnly = true });
        var random = new Random(name.Length * 31);
        var buffer = new byte[256];
        for (int trial = 0; trial < 300; trial++)
        {
            int count = random.Next(1, 8);
            // Mostly low ids (control, byte and short pieces), sometimes anything.
            int[] ids = Enumerable.Range(0, count).Select(_ => random.Next(4) == 0 ? random.Next(ours.VocabSize) : random.Next(600))
                .Select(id => id == ours.BosId ? 3 + ' ' : id).ToArray(); // no BOS, see above

            var expected = new List<byte>();
            for (int i = 0; i < ids.Length; i++)
            {
                int n = (int)weights.NativeHandle.TokenToSpan((LLamaToken)ids[i], buffer, lstrip: i == 0 ? 1 : 0, special: false);
                expected.AddRange(buffer.AsSpan(0, n));
            }
            var actual = new List<byte>();
            for (int i = 0; i < ids.Length; i++)
                ours.AppendBytes(ids[i], i == 0 ? -1 : ids[i - 1], actual);
            Assert.True(expected.SequenceEqual(actual), $"[{string.Join(' ', ids)}]: llama.cpp {Convert.ToHexString(expected.ToArray())}, ClockLM {Convert.ToHexString(actual.ToArray())}");
        }
    }

    private static string Escape(string s) => s.Replace("\n", "\\n").Replace("\t", "\\t").Replace("\r", "\\r");
}
