using ClockLM.Clock;
using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Tests.Batching;

/// <summary>Prompts evaluated in chunks against the same prompts token by token: identical logits, caches and residuals.</summary>
public class ChunkedPromptTests
{
    private static int[] Prompt(int count, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();
    }

    private static void AssertBitIdentical(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"{what}[{i}]: {actual[i]} vs token by token {expected[i]}");
    }

    /// <summary>Evaluates the prompt in two calls (the second continues the cache), then decodes two tokens, with
    /// <paramref name="microBatch"/>; compares everything with micro-batch 1 (token by token).</summary>
    private static void AssertChunksMatchTokenByToken(Model model, int microBatch, WorkerPool? pool, int promptLength = 21)
    {
        var prompt = Prompt(promptLength, model.Config.VocabSize, seed: microBatch);
        int split = promptLength / 3;
        var reference = model.CreateTransformer(64, pool);
        reference.MicroBatch = 1;
        var chunked = model.CreateTransformer(64, pool);
        chunked.MicroBatch = microBatch;

        AssertBitIdentical(reference.Evaluate(prompt.AsSpan(0, split), 0).ToArray(), chunked.Evaluate(prompt.AsSpan(0, split), 0), "first logits");
        AssertBitIdentical(reference.Evaluate(prompt.AsSpan(split), split).ToArray(), chunked.Evaluate(prompt.AsSpan(split), split), "prompt logits");
        AssertBitIdentical(reference.Residual, chunked.Residual, "residual");
        Assert.Equal(reference.Position, chunked.Position);
        for (int layer = 0; layer < model.Config.Layers; layer++)
        {
            Assert.True(reference.Cache.KeyBytes(layer, 0, promptLength).SequenceEqual(chunked.Cache.KeyBytes(layer, 0, promptLength)), $"keys of layer {layer}");
            Assert.True(reference.Cache.ValueBytes(layer, 0, promptLength).SequenceEqual(chunked.Cache.ValueBytes(layer, 0, promptLength)), $"values of layer {layer}");
        }
        for (int pos = promptLength; pos < promptLength + 2; pos++)
            AssertBitIdentical(reference.Forward(pos % 7, pos).ToArray(), chunked.Forward(pos % 7, pos), $"decoded logits at {pos}");
    }

    [Theory]
    [InlineData(4)]
    [InlineData(7)]
    [InlineData(32)]
    public void Stories260KChunksEqualTokenByToken(int microBatch)
    {
        using var model = Model.Load(SharedData.Stories260K, SharedData.Tok512);
        AssertChunksMatchTokenByToken(model, microBatch, pool: null);
    }

    [Theory]
    [InlineData("Q4_0", 1)]
    [InlineData("Q8_0", 2)]
    [InlineData("F16", 2)]
    [InlineData("F32", 1)]
    [InlineData("Q4_K_M", 2)]
    [InlineData("Q6_K", 1)]
    public void RandomModelChunksEqualTokenByToken(string scheme, int threads)
    {
        using var dir = new TempDir();
        string path = dir.File("m.gguf");
        // 320 columns: ten 32-value blocks (one eight-block step plus a tail); 256-value types need 512.
        int dim = scheme.StartsWith("Q4_K") || scheme.StartsWith("Q6_K") ? 512 : 320;
        var config = new LlamaConfig(Dim: dim, HiddenDim: 2 * dim, Layers: 2, Heads: 4, KvHeads: 2, VocabSize: 300, ContextLength: 64);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(300), QuantizationScheme.Parse(scheme), std: 0.05f);
        using var model = Model.Load(path);
        using var pool = new WorkerPool(threads - 1);
        AssertChunksMatchTokenByToken(model, microBatch: 5, pool);
    }

    [Fact]
    public void HookAttachedRunsInChunksAndSeesEveryPosition()
    {
        using var model = Model.Load(SharedData.Stories260K, SharedData.Tok512);
        var prompt = Prompt(9, model.Config.VocabSize, seed: 3);
        var plain = model.CreateTransformer(32);
        var expected = plain.Evaluate(prompt, 0).ToArray(); // chunked (default micro-batch)

        var hooked = model.CreateTransformer(32);
        var seen = new List<(int Layer, int Position)>();
        var logits = hooked.Run(prompt, (point, layer, position, activation) =>
        {
            if (point == ActivationPoint.ResidPost) seen.Add((layer, position));
        });
        AssertBitIdentical(expected, logits, "hooked logits");
        // One chunk of nine: every cycle runs for all nine positions before the next cycle begins.
        var want = Enumerable.Range(0, model.Config.Layers).SelectMany(l => Enumerable.Range(0, 9).Select(p => (l, p))).ToList();
        Assert.Equal(want, seen);
    }

    [Fact]
    public void ObserverAttachedGetsAnEventPerToken()
    {
        using var model = Model.Load(SharedData.Stories260K, SharedData.Tok512);
        var prompt = Prompt(6, model.Config.VocabSize, seed: 4);
        var expected = model.CreateTransformer(32).Evaluate(prompt, 0).ToArray();
        var observed = model.CreateTransformer(32);
        var totals = new CycleTotals(model.Config.Layers);
        observed.Observer = totals;
        AssertBitIdentical(expected, observed.Evaluate(prompt, 0), "observed logits");
        Assert.Equal(6, totals.Tokens);
    }

    [Fact]
    public void MicroBatchBelowOneIsRejected()
    {
        using var model = Model.Load(SharedData.Stories260K, SharedData.Tok512);
        var t = model.CreateTransformer(16);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.MicroBatch = 0);
    }

    [Fact]
    public void PromptPastTheContextIsRejectedBeforeAnyWork()
    {
        using var model = Model.Load(SharedData.Stories260K, SharedData.Tok512);
        var t = model.CreateTransformer(8);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => t.Evaluate(new int[6], 4));
        Assert.Contains("context", e.Message);
    }
}
