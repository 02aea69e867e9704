using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tensors;
using ClockLM.Tests.Families;

namespace ClockLM.Tests.Batching;

/// <summary>Chunked prompts on the other families' options (sliding windows, soft-caps, head norms, biases, LayerNorm,
/// learned positions): bit-identical to token by token, with chunks that cross the sliding window.</summary>
public class ChunkedFamilyTests
{
    private static void AssertChunksEqualTokenByToken(string path, int promptLength)
    {
        using var model = Model.Load(path);
        using var pool = new WorkerPool(1); // the chunk's activations are split across it too
        var prompt = Enumerable.Range(0, promptLength).Select(i => (i * 53 + 7) % model.Config.VocabSize).ToArray();
        var reference = model.CreateTransformer(64, pool);
        reference.MicroBatch = 1;
        var chunked = model.CreateTransformer(64, pool);
        chunked.MicroBatch = 6;
        var expected = reference.Evaluate(prompt, 0).ToArray();
        var actual = chunked.Evaluate(prompt, 0).ToArray();
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"logit {i}: chunked {actual[i]} vs token by token {expected[i]}");
        var next = reference.Forward(3, promptLength).ToArray();
        Assert.Equal(next, chunked.Forward(3, promptLength).ToArray());
    }

    [Theory]
    [InlineData("gemma2")]
    [InlineData("gemma3")]
    public void GemmaChunksEqualTokenByToken(string arch)
    {
        using var dir = new TempDir();
        string path = dir.File($"{arch}.gguf");
        var c = new LlamaConfig(Dim: 128, HiddenDim: 256, Layers: 3, Heads: 4, KvHeads: 2, VocabSize: 300, ContextLength: 64, RmsEpsilon: 1e-6f) { HeadDim = 48 };
        var tensors = FamilyModels.LlamaLayout(c);
        tensors.RemoveAll(t => t.Name == "output.weight");
        for (int l = 0; l < c.Layers; l++)
        {
            tensors.Add(new($"blk.{l}.post_attention_norm.weight", 1, c.Dim));
            tensors.Add(new($"blk.{l}.post_ffw_norm.weight", 1, c.Dim));
            if (arch == "gemma2") continue;
            tensors.Add(new($"blk.{l}.attn_q_norm.weight", 1, c.HeadSize));
            tensors.Add(new($"blk.{l}.attn_k_norm.weight", 1, c.HeadSize));
        }
        FamilyModels.Write(path, arch, c, tensors, w =>
        {
            w.Set($"{arch}.attention.key_length", 48u);
            w.Set($"{arch}.attention.value_length", 48u);
            w.Set($"{arch}.attention.sliding_window", 5u);
            if (arch == "gemma2")
            {
                w.Set("gemma2.attn_logit_softcapping", 0.5f);
                w.Set("gemma2.final_logit_softcapping", 1.0f);
            }
        }, seed: 5);
        AssertChunksEqualTokenByToken(path, promptLength: 17);
    }

    [Fact]
    public void Gpt2ChunksEqualTokenByToken()
    {
        using var dir = new TempDir();
        string path = dir.File("gpt2.gguf");
        var c = FamilyModels.WriteGpt2(path, layers: 2, contextLength: 64);
        AssertChunksEqualTokenByToken(path, promptLength: 13);
    }
}
