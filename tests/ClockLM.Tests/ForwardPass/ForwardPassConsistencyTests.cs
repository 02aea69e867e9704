using ClockLM.Models;
using ClockLM.Tensors;
using ClockLM.Tests.Families;

namespace ClockLM.Tests.ForwardPass;

/// <summary>
/// The one forward pass gives every row the same bits whichever way it runs: token by token, in prompt chunks of 7 or
/// 128 (prompts of 1, 128, 129 and 300 tokens: a lone token, one full chunk, a full chunk and a chunk of one, several
/// chunks and a tail), and in batched steps of one to four sequences. Every weight type, at a width that is a multiple
/// of 256 and at the widths 320 and 896 where K-quant mixes fall back to other types layer by layer; every family; and
/// every KV cache type (the default F16 above; F32, Q8_0 and a Q8_0/F16 mix with one and with seven query heads per
/// key/value head).
/// </summary>
public class ForwardPassConsistencyTests
{
    private const int Vocab = 96, PromptLength = 300;

    public static TheoryData<string, int> TypesAndWidths()
    {
        var data = new TheoryData<string, int>();
        foreach (string scheme in new[] { "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K_M", "Q5_K_M" })
            foreach (int dim in new[] { 256, 320, 896 })
                data.Add(scheme, dim);
        return data;
    }

    [Theory, MemberData(nameof(TypesAndWidths))]
    public void EveryTypeAndWidthGivesTheSameBitsInEveryBatching(string scheme, int dim)
    {
        using var dir = new TempDir();
        string path = dir.File("m.gguf");
        // Heads of 64; grouped-query attention where the width allows it (896: 14 heads over 2, as Qwen2.5-0.5B).
        int heads = dim / 64, kvHeads = dim == 320 ? 5 : 2;
        var config = new LlamaConfig(Dim: dim, HiddenDim: dim * 3 / 2 / 32 * 32, Layers: 2, Heads: heads, KvHeads: kvHeads,
            VocabSize: Vocab, ContextLength: PromptLength + 8);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(Vocab), QuantizationScheme.Parse(scheme), std: 0.05f);
        using var model = Model.Load(path);
        AssertEveryBatchingAgrees(model);
    }

    public static TheoryData<string, int> CacheTypesAndWidths()
    {
        var data = new TheoryData<string, int>();
        foreach (string types in new[] { "f32/f32", "q8_0/q8_0", "q8_0/f16", "f16/q8_0" })
            foreach (int dim in new[] { 320, 896 })
                data.Add(types, dim);
        return data;
    }

    [Theory, MemberData(nameof(CacheTypesAndWidths))]
    public void EveryCacheTypeGivesTheSameBitsInEveryBatching(string types, int dim)
    {
        using var dir = new TempDir();
        string path = dir.File("m.gguf");
        // 320: five heads of 64, each its own key/value head; 896: fourteen over two, seven per group.
        int heads = dim / 64, kvHeads = dim == 320 ? 5 : 2;
        var config = new LlamaConfig(Dim: dim, HiddenDim: dim * 3 / 2 / 32 * 32, Layers: 2, Heads: heads, KvHeads: kvHeads,
            VocabSize: Vocab, ContextLength: PromptLength + 8);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(Vocab), QuantizationScheme.Parse("Q4_0"), std: 0.05f);
        using var model = Model.Load(path);
        string[] parts = types.Split('/');
        AssertEveryBatchingAgrees(model, new KvCacheOptions { KeyType = KvCacheOptions.ParseType(parts[0]), ValueType = KvCacheOptions.ParseType(parts[1]) });
    }

    public static TheoryData<string> Families() => ["llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "gpt2"];

    [Theory, MemberData(nameof(Families))]
    public void EveryFamilyGivesTheSameBitsInEveryBatching(string arch)
    {
        using var dir = new TempDir();
        string path = dir.File($"{arch}.gguf");
        FamilyModels.WriteArchitecture(path, arch, contextLength: PromptLength + 8);
        using var model = Model.Load(path);
        AssertEveryBatchingAgrees(model);
    }

    /// <summary>Phi-3's fused attn_qkv and gate/up tensors are split into q, k, v, gate and up first, then each part is
    /// packed like any Q4_0 or Q8_0 matrix (no packed copy of the fused tensor is kept).</summary>
    [Theory]
    [InlineData("Q4_0")]
    [InlineData("Q8_0")]
    public void FusedTensorsAreSplitThenPacked(string scheme)
    {
        using var dir = new TempDir();
        string f32 = dir.File("phi3-f32.gguf"), path = dir.File($"phi3-{scheme}.gguf");
        FamilyModels.WriteArchitecture(f32, "phi3", contextLength: PromptLength + 8);
        ModelQuantizer.Quantize(f32, path, QuantizationScheme.Parse(scheme));
        using var model = Model.Load(path);
        var layer = model.Weights.Layers[0];
        // Packing needs the AVX2 kernels; without them the parts stay in the file's layout (and must agree all the same).
        bool packs = KernelOptions.Best.UsesPacked;
        Assert.All(new[] { layer.Wq, layer.Wk, layer.Wv, layer.W1, layer.W3 }, w => Assert.Equal(packs, w.IsPacked));
        AssertEveryBatchingAgrees(model);
    }

    private static int[] Tokens(int count, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();
    }

    /// <summary>Every token's logits, one Forward at a time: the reference (tokens, vocab).</summary>
    private static float[] TokenByToken(Model model, int[] tokens, KvCacheOptions? cache)
    {
        int vocab = model.Config.VocabSize;
        var t = model.CreateTransformer(PromptLength + 8, cache: cache);
        var logits = new float[tokens.Length * vocab];
        for (int i = 0; i < tokens.Length; i++) t.Forward(tokens[i], i).CopyTo(logits.AsSpan(i * vocab, vocab));
        return logits;
    }

    private static void AssertEveryBatchingAgrees(Model model, KvCacheOptions? cache = null)
    {
        int vocab = model.Config.VocabSize;
        var prompt = Tokens(PromptLength, vocab, seed: 1);
        var expected = TokenByToken(model, prompt, cache);
        using var pool = new WorkerPool(1);

        // Prompt chunks: every row's logits, and what the sequence is left with.
        foreach (var (chunk, length) in new[] { (7, PromptLength), (128, 1), (128, 128), (128, 129), (128, PromptLength) })
        {
            var t = model.CreateTransformer(PromptLength + 8, pool, cache);
            t.MicroBatch = chunk;
            var logits = new float[length * vocab];
            t.Evaluate(prompt.AsSpan(0, length), 0, logits);
            AssertBitIdentical(expected.AsSpan(0, length * vocab), logits, vocab, $"chunks of {chunk}, {length} tokens");
            AssertBitIdentical(expected.AsSpan((length - 1) * vocab, vocab), t.Logits, vocab, $"chunks of {chunk}, {length} tokens, last logits");
            Assert.Equal(length - 1, t.Position);
        }

        // Batched steps: sequence k joins at step k, so steps run 1, 2, 3, then 4 sequences together.
        const int steps = 10;
        var decoder = new BatchDecoder(model.Config, model.Weights, pool);
        var streams = Enumerable.Range(0, 4).Select(k => k == 0 ? prompt[..steps] : Tokens(steps - k, vocab, seed: 10 + k)).ToArray();
        var references = streams.Select((s, k) => k == 0 ? expected.AsSpan(0, steps * vocab).ToArray() : TokenByToken(model, s, cache)).ToArray();
        var sequences = Enumerable.Range(0, 4).Select(_ => decoder.CreateSequence(PromptLength + 8, cache)).ToArray();
        for (int step = 0; step < steps; step++)
        {
            int active = Math.Min(step + 1, 4);
            var rows = sequences[..active];
            var tokens = Enumerable.Range(0, active).Select(k => streams[k][step - k]).ToArray();
            var positions = Enumerable.Range(0, active).Select(k => step - k).ToArray();
            decoder.Step(rows, tokens, positions);
            for (int k = 0; k < active; k++)
                AssertBitIdentical(references[k].AsSpan((step - k) * vocab, vocab), rows[k].Logits, vocab,
                    $"step {step} of {active} sequences, sequence {k} at position {step - k}");
        }
    }

    private static void AssertBitIdentical(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, int vocab, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: token {i / vocab} logit {i % vocab} is {actual[i]}, token by token {expected[i]}");
    }
}
