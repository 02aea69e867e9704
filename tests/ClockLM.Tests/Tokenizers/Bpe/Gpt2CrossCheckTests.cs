using System.Text;
using ClockLM.Gguf;
using ClockLM.Tokenizers;
using Microsoft.ML.Tokenizers;
using Xunit.Abstractions;
using Tokenizer = ClockLM.Tokenizers.Tokenizer;

namespace ClockLM.Tests.Tokenizers.Bpe;

/// <summary>ClockLM's GPT-2 tokenizer (from ggml-vocab-gpt-2.gguf) against an independent implementation,
/// Microsoft.ML.Tokenizers' tiktoken GPT-2 encoding, on seeded random text.</summary>
public sealed class Gpt2CrossCheckTests(ITestOutputHelper output)
{
    private const int Samples = 3000;

    [Fact]
    public void IdsEqualMicrosoftMlTokenizersOnRandomText()
    {
        var ours = Assert.IsType<ByteLevelBpeTokenizer>(SharedTokenizers.Get("gpt-2"));
        TiktokenTokenizer reference = TiktokenTokenizer.CreateForModel("gpt2");

        var random = new Random(20261128);
        var failures = new StringBuilder();
        int mismatches = 0, tokens = 0;
        for (int i = 0; i < Samples; i++)
        {
            string text = RandomText.Next(random);
            List<int> actual = ours.Encode(text, addSpecial: false);
            IReadOnlyList<int> expected = reference.EncodeToIds(text);
            tokens += actual.Count;
            if (!actual.SequenceEqual(expected))
            {
                if (++mismatches <= 5)
                    failures.AppendLine($"{VocabTestCases.Escape(text)}\n  expected {string.Join(' ', expected)}\n  actual   {string.Join(' ', actual)}");
            }
        }
        output.WriteLine($"{Samples - mismatches}/{Samples} random texts equal ({tokens} tokens)");
        Assert.True(tokens > Samples * 5, "the random texts are too short to test anything");
        Assert.True(mismatches == 0, $"{mismatches}/{Samples} random texts differ, first ones:\n{failures}");
    }
}
