using System.Text;
using ClockLM.Formats;
using ClockLM.Models;
using ClockLM.Tokenizers;
using CsCheck;
using Xunit.Abstractions;

namespace ClockLM.Tests.Fuzzing;

/// <summary>Every tokenizer on random bytes (decoded as UTF-8) and random UTF-16 text with lone surrogates: encoding
/// gives ids inside the vocabulary, decoding any ids gives text, and the lossless vocabularies give the text back.</summary>
public sealed class TokenizerFuzzTests(ITestOutputHelper output)
{
    private static readonly Lazy<(string Name, Tokenizer Tokenizer, bool Lossless)[]> Tokenizers = new(() =>
    [
        ("llama-spm", Model.LoadTokenizer(SharedData.Vocab("ggml-vocab-llama-spm.gguf")), true),
        ("phi-3", Model.LoadTokenizer(SharedData.Vocab("ggml-vocab-phi-3.gguf")), false),
        ("gpt-2", Model.LoadTokenizer(SharedData.Vocab("ggml-vocab-gpt-2.gguf")), true),
        ("deepseek-llm", Model.LoadTokenizer(SharedData.Vocab("ggml-vocab-deepseek-llm.gguf")), false),
        ("bert-bge", Model.LoadTokenizer(SharedData.Vocab("ggml-vocab-bert-bge.gguf")), false),
        ("llama2.c tok512", Llama2cTokenizer.Load(SharedData.Tok512, 512), false),
    ]);

    /// <summary>Text from random UTF-8 bytes, or random UTF-16 code units (surrogates, alone or paired, included),
    /// or a mix of ASCII, special-token spellings and white space.</summary>
    private static readonly Gen<string> Texts = Gen.OneOf<string>(
        Gen.Byte.Array[0, 200].Select(b => Encoding.UTF8.GetString(b)),
        Gen.Char[char.MinValue, char.MaxValue].Array[0, 100].Select(c => new string(c)),
        Gen.OneOf<string>("<s>", "</s>", "<unk>", "<|endoftext|>", "<|end|>", "[CLS]", "[SEP]", " ", "  ", "\n", "\t", "a", "Hello",
                "\ud83e\udd99", "\ud800", "\udfff", "é", "日本", "<0x0A>", "▁", "'s", "123").Array[0, 30].Select(string.Concat));

    private static string WithoutLoneSurrogates(string text) => Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text));

    [Fact]
    public void TokenizersEncodeAnyTextAndDecodeAnyIds()
    {
        var tokenizers = Tokenizers.Value;
        var gen = Gen.Select(Texts, Gen.Int[0, tokenizers.Length - 1], Gen.Bool, Gen.Bool, Gen.Int[0, int.MaxValue].Array[0, 16]);
        FuzzBudget.Run(output, "tokenizers", gen, input =>
        {
            var (text, which, addSpecial, parseSpecial, randomIds) = input;
            var (name, tokenizer, lossless) = tokenizers[which];
            var ids = tokenizer.Encode(text, addSpecial, parseSpecial);
            Assert.All(ids, id => Assert.InRange(id, 0, tokenizer.VocabSize - 1));
            string decoded = tokenizer.Decode(ids);
            if (lossless && !addSpecial && !parseSpecial)
            {
                // SentencePiece writes spaces as U+2581, so a U+2581 in the text comes back as a space.
                string expected = WithoutLoneSurrogates(text);
                if (tokenizer is SentencePieceTokenizer) expected = expected.Replace(SentencePieceTokenizer.SpaceMarker, ' ');
                Assert.Equal(expected, tokenizer.Decode(tokenizer.Encode(text, addSpecial: false)));
            }
            var detokenizer = new StreamingDetokenizer(tokenizer);
            var streamed = new StringBuilder();
            foreach (int id in randomIds.Select(r => r % tokenizer.VocabSize)) streamed.Append(detokenizer.Append(id));
            streamed.Append(detokenizer.Flush());
            Assert.Equal(tokenizer.Decode(randomIds.Select(r => r % tokenizer.VocabSize)), streamed.ToString());
            _ = decoded;
        }, print: i => $"{i.Item2} {tokenizers[i.Item2].Name} addSpecial={i.Item3} parseSpecial={i.Item4} text=\"{Escape(i.Item1)}\" ids=[{string.Join(",", i.Item5)}]");
    }

    private static string Escape(string s) => string.Concat(s.Select(c => c < 32 || c > 126 ? $"\\u{(int)c:x4}" : c.ToString()));
}
