using System.Text;
using ClockLM.Gguf;
using ClockLM.Tokenizers;
using LLama;
using LLama.Common;
using LLama.Native;
using Xunit.Abstractions;
using Tokenizer = ClockLM.Tokenizers.Tokenizer;

namespace ClockLM.Tests.Tokenizers.Bpe;

/// <summary>ClockLM's tokenizers against llama.cpp itself (LLamaSharp's native build, vocabulary only) on seeded
/// random text, with and without special tokens written in it.</summary>
public sealed class LlamaCppTokenizerOracleTests(ITestOutputHelper output)
{
    private const int Samples = 400;
    private static readonly object Gate = new();

    [Theory]
    [MemberData(nameof(SharedTokenizers.ByteLevelBpeAndWordPiece), MemberType = typeof(SharedTokenizers))]
    public void IdsEqualLlamaCpp(string vocab)
    {
        string path = SharedData.Vocab($"ggml-vocab-{vocab}.gguf");
        Tokenizer ours = SharedTokenizers.Get(vocab);
        using LLamaWeights native = LoadVocabulary(path);

        // Special tokens to write into the text: the vocabulary's control and user-defined entries.
        string[] specials = Enumerable.Range(0, ours.VocabSize)
            .Where(id => ours.GetKind(id) is TokenKind.Control or TokenKind.UserDefined)
            .Select(ours.GetPiece).ToArray();

        // A fixed seed per vocabulary (string.GetHashCode changes from process to process).
        var random = new Random((int)(ClockLM.Models.SyntheticModel.StableHash(vocab) & 0xFFFF));
        var failures = new StringBuilder();
        int mismatches = 0;
        for (int i = 0; i < Samples; i++)
        {
            string text = RandomText.Next(random);
            bool withSpecials = i % 4 == 3 && specials.Length > 0;
            if (withSpecials)
                text = text.Insert(random.Next(text.Length + 1), specials[random.Next(specials.Length)]);
            bool addSpecial = i % 2 == 1;
            bool parseSpecial = withSpecials && i % 8 == 7;

            List<int> actual = ours.Encode(text, addSpecial, parseSpecial);
            int[] expected = native.NativeHandle.Tokenize(text, addSpecial, parseSpecial, Encoding.UTF8).Select(t => (int)t).ToArray();
            if (!actual.SequenceEqual(expected) && ++mismatches <= 5)
                failures.AppendLine($"{VocabTestCases.Escape(text)} addSpecial={addSpecial} parseSpecial={parseSpecial}\n" +
                    $"  llama.cpp {string.Join(' ', expected)}\n  ClockLM   {string.Join(' ', actual)}");
        }
        output.WriteLine($"{vocab}: {Samples - mismatches}/{Samples} random texts equal");
        Assert.True(mismatches == 0, $"{vocab}: {mismatches}/{Samples} differ, first ones:\n{failures}");
    }

    [Theory]
    [MemberData(nameof(SharedTokenizers.ByteLevelBpeAndWordPiece), MemberType = typeof(SharedTokenizers))]
    public void EveryTokenDecodesToLlamaCppsPiece(string vocab)
    {
        string path = SharedData.Vocab($"ggml-vocab-{vocab}.gguf");
        Tokenizer ours = SharedTokenizers.Get(vocab);
        using LLamaWeights native = LoadVocabulary(path);

        var buffer = new byte[1024];
        var bytes = new List<byte>();
        int differences = 0;
        var failures = new StringBuilder();
        for (int id = 0; id < ours.VocabSize; id++)
        {
            int n = (int)native.NativeHandle.TokenToSpan((LLamaToken)id, buffer, 0, false);
            bytes.Clear();
            ours.AppendBytes(id, -1, bytes);
            if (!bytes.SequenceEqual(buffer.Take(n)) && ++differences <= 5)
                failures.AppendLine($"{id} '{ours.GetPiece(id)}' ({ours.GetKind(id)}): llama.cpp {Convert.ToHexString(buffer, 0, n)}, ClockLM {Convert.ToHexString([.. bytes])}");
        }
        Assert.True(differences == 0, $"{vocab}: {differences} of {ours.VocabSize} pieces differ:\n{failures}");
    }

    private static LLamaWeights LoadVocabulary(string path)
    {
        lock (Gate)
        {
            NativeLogConfig.llama_log_set((level, message) => { });
            return LLamaWeights.LoadFromFile(new ModelParams(path) { VocabOnly = true, GpuLayerCount = 0 });
        }
    }
}
