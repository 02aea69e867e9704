using ClockLM.Models;
using ClockLM.Tests.Oracle;
using ClockLM.Training;

namespace ClockLM.Tests.Training;

/// <summary>Models trained by ClockLM run in llama.cpp with the logits and greedy tokens ClockLM computes.</summary>
[Collection("llama.cpp")]
public class LlamaCppTrainedModelTests
{
    /// <summary>The built-in model committed under models/.</summary>
    public static string BuiltInModel => Path.Combine(SharedData.RepoRoot, "models", "clocklm-kjv.gguf");

    [Fact]
    public void ExportedTinyModelHasLlamaCppLogits()
    {
        var result = LlamaTrainer.Train(TinyCorpus.Text(), LlamaTrainingTests.Tiny with { Steps = 8 });
        using var dir = new TempDir();
        string path = dir.File("tiny.gguf");
        result.Model.ExportGguf(path, "tiny", result.Tokenizer);
        var ids = result.Tokenizer.Encode("and the shepherd looked upon the river");

        using var oracle = new LlamaCppOracle(path, contextSize: 32);
        var expected = oracle.PromptLogits(ids);
        var logits = result.Model.Forward(ids.ToArray(), 1, ids.Count);
        int vocab = result.Model.Config.VocabSize, last = ids.Count - 1;
        for (int v = 0; v < vocab; v++)
            Assert.True(Math.Abs(expected[v] - logits.Data[last * vocab + v]) < 1e-3, $"logit {v}: llama.cpp {expected[v]}, ClockLM {logits.Data[last * vocab + v]}");
    }

    [Theory]
    [InlineData("In the beginning")]
    [InlineData("And the LORD spake unto Moses, saying,")]
    [InlineData("Blessed are the")]
    public void BuiltInModelGreedyTokensMatchLlamaCpp(string prompt)
    {
        using var model = Model.Load(BuiltInModel);
        var ids = model.Tokenizer.Encode(prompt);
        const int count = 24;
        var transformer = model.CreateTransformer(cache: KvCacheOptions.F32); // as the oracle's cache
        var logits = transformer.Evaluate(ids.ToArray(), 0).ToArray();
        var ours = new List<int>();
        for (int i = 0; i < count; i++)
        {
            int next = LlamaCppOracle.ArgMax(logits);
            ours.Add(next);
            if (i < count - 1) logits = transformer.Forward(next, ids.Count + i).ToArray();
        }

        using var oracle = new LlamaCppOracle(BuiltInModel, contextSize: 128);
        Assert.Equal(oracle.Greedy(ids, count), ours);
    }
}
