using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tensors;
using ClockLM.Tokenizers;
using Xunit.Abstractions;

namespace ClockLM.Tests.Oracle;

/// <summary>
/// ClockLM's Llama forward pass against llama.cpp on random-weight models the test writes itself, with the real
/// 32000-token Llama vocabulary: logits after a 20-token prompt, and 32 greedy tokens.
/// </summary>
[Collection("llama.cpp")]
public class LlamaLogitsTests(ITestOutputHelper output)
{
    private static readonly LlamaConfig Shape = new(Dim: 128, HiddenDim: 384, Layers: 4, Heads: 4, KvHeads: 2, VocabSize: 32000, ContextLength: 256);

    private static readonly Lazy<SentencePieceTokenizer> Vocabulary = new(() =>
    {
        using var file = GgufFile.Open(SharedData.Vocab("ggml-vocab-llama-spm.gguf"));
        return SentencePieceTokenizer.FromGguf(file);
    });

    /// <summary>Largest allowed |ClockLM logit - llama.cpp logit|, per weight type, in units of the logits' standard
    /// deviation (about 0.56 here). F32: both compute in float and differ only in summation order; measured 2e-6.
    /// F16: llama.cpp rounds the activation vector to F16 before every product with F16 weights (ClockLM keeps F32),
    /// a relative error of 2^-11 per element; measured 3e-3.</summary>
    public static TheoryData<GgmlType, double> Types => new()
    {
        { GgmlType.F32, 2e-5 },
        { GgmlType.F16, 1e-2 },
    };

    [Theory]
    [MemberData(nameof(Types))]
    public void LogitsAndGreedyTokensMatchLlamaCpp(GgmlType type, double tolerance)
    {
        using var dir = new TempDir();
        string path = dir.File($"random-{type}.gguf");
        TestModels.WriteRandomLlama(path, Shape, Vocabulary.Value, type, seed: 42, separateOutput: true, std: 0.05f);

        using var model = Model.Load(path);
        var prompt = model.Tokenizer.Encode("The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.");
        prompt = prompt.Take(20).ToList();
        Assert.Equal(20, prompt.Count);

        var transformer = model.CreateTransformer(256);
        float[] ours = transformer.Evaluate(prompt.ToArray(), 0).ToArray();
        var ourGreedy = new List<int>();
        int pos = prompt.Count;
        var logits = ours.ToArray();
        for (int i = 0; i < 32; i++)
        {
            int next = LlamaCppOracle.ArgMax(logits);
            ourGreedy.Add(next);
            if (i < 31) logits = transformer.Forward(next, pos++).ToArray();
        }

        float[] theirs;
        List<int> theirGreedy;
        using (var oracle = new LlamaCppOracle(path))
        {
            theirs = oracle.PromptLogits(prompt);
            theirGreedy = oracle.Greedy(prompt, 32);
        }

        double maxDiff = ours.Zip(theirs, (a, b) => Math.Abs(a - b)).Max();
        double mean = theirs.Average(v => (double)v);
        double std = Math.Sqrt(theirs.Average(v => (v - mean) * (v - mean)));
        output.WriteLine($"{type}: max |diff| {maxDiff:E3}, logit std {std:F4}, ratio {maxDiff / std:E3}");
        Assert.True(maxDiff <= tolerance * std, $"{type}: max |logit difference| {maxDiff:E3} exceeds {tolerance} x std {std:E3}");
        Assert.Equal(theirGreedy, ourGreedy);
    }
}
