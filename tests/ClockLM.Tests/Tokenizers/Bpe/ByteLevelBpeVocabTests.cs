using ClockLM.Gguf;
using ClockLM.Tokenizers;
using Xunit.Abstractions;

namespace ClockLM.Tests.Tokenizers.Bpe;

/// <summary>Every case of llama.cpp's tokenizer test files for the byte-level BPE vocabularies gives llama.cpp's ids.</summary>
public sealed class ByteLevelBpeVocabTests(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(SharedTokenizers.ByteLevelBpe), MemberType = typeof(SharedTokenizers))]
    public void EveryCaseMatchesLlamaCpp(string vocab)
    {
        string path = SharedData.Vocab($"ggml-vocab-{vocab}.gguf");
        var tokenizer = Assert.IsType<ByteLevelBpeTokenizer>(SharedTokenizers.Get(vocab));

        var (passed, total, failures) = VocabTestCases.Check(path, s => tokenizer.Encode(s, addSpecial: false, parseSpecial: false));

        output.WriteLine($"{vocab}: {passed}/{total} cases");
        Assert.True(total >= 40, $"{vocab}: only {total} cases read");
        Assert.True(passed == total, $"{vocab}: {passed}/{total} cases\n{failures}");
    }
}
