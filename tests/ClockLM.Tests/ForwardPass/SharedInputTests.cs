using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Tests.ForwardPass;

/// <summary>
/// Products that share a quantized input (q, k and v; gate and up) on a K-quant mix at a width that is not a multiple
/// of 256: q and k fall back to unpacked Q5_0, v to packed Q8_0 (Q6_K's fallback), so one input feeds different
/// kernels. Every path must see the input of its own layer and row, never an earlier product's.
/// </summary>
public class SharedInputTests
{
    // A multiple of 8, so that the output head (Q6_K falling back to Q8_0) is packed too: its input is the last
    // product of every token, and the next token's first packed product must not take it for its own.
    // The feed-forward width equals dim, so ffn_down (packed where it falls back to Q8_0) reads a vector as wide as
    // attn_v's input too.
    private const int Vocab = 304;

    private static Model WriteModel(TempDir dir, int dim, string scheme)
    {
        string path = dir.File("m.gguf");
        var config = new LlamaConfig(Dim: dim, HiddenDim: dim, Layers: 6, Heads: 5, KvHeads: 5, VocabSize: Vocab, ContextLength: 160);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(Vocab), QuantizationScheme.Parse(scheme), std: 0.05f);
        return Model.Load(path);
    }

    private static void AssertBitIdentical(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"{what}[{i}]: {actual[i]} vs token by token {expected[i]}");
    }

    [Theory]
    [InlineData(320, "Q4_K_M")]
    [InlineData(320, "Q5_K_M")]
    public void ChunkOfOneAfterAFullChunkEqualsTokenByToken(int dim, string scheme)
    {
        using var dir = new TempDir();
        using var model = WriteModel(dir, dim, scheme);
        var prompt = Enumerable.Range(0, 129).Select(i => (i * 37 + 11) % Vocab).ToArray();
        var reference = model.CreateTransformer(160);
        var expected = new float[Vocab];
        for (int i = 0; i < prompt.Length; i++) reference.Forward(prompt[i], i).CopyTo(expected);
        var chunked = model.CreateTransformer(160); // chunks of 128, then 1
        AssertBitIdentical(expected, chunked.Evaluate(prompt, 0), "logits");
    }

    [Theory]
    [InlineData(320, "Q4_K_M")]
    [InlineData(320, "Q5_K_M")]
    public void OneSequenceSteppedInABatchEqualsForward(int dim, string scheme)
    {
        using var dir = new TempDir();
        using var model = WriteModel(dir, dim, scheme);
        var prompt = Enumerable.Range(0, 12).Select(i => (i * 37 + 11) % Vocab).ToArray();
        var reference = model.CreateTransformer(160);
        var decoder = new BatchDecoder(model.Config, model.Weights);
        var stepped = decoder.CreateSequence(160);
        for (int i = 0; i < prompt.Length; i++)
        {
            var expected = reference.Forward(prompt[i], i).ToArray();
            decoder.Step([stepped], [prompt[i]], [i]);
            AssertBitIdentical(expected, stepped.Logits, $"logits at {i}");
        }
    }
}
