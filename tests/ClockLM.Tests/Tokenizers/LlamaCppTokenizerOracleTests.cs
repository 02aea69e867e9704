using System.Text;
using ClockLM.Tokenizers;
using LLama;
using LLama.Common;

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

    private static string Escape(string s) => s.Replace("\n", "\\n").Replace("\t", "\\t").Replace("\r", "\\r");
}
