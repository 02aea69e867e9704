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

        using var oracle = new LlamaCppOracle(BuiltInModel, contextSize: model.Config.ContextLength);
        Assert.Equal(oracle.Greedy(ids, count), ours);
    }

    /// <summary>
    /// The built-in model's logits equal llama.cpp's at the end of a prompt that fills nearly all of its context (at
    /// least 512 tokens, so the positions chat and tool calls need are the ones checked), and so do its greedy tokens
    /// in the last few positions. The model's matrices are F16: llama.cpp rounds the activations to F16 before each
    /// F16 product (relative error up to 2^-11 per element) where ClockLM multiplies the F32 activations exactly, so
    /// the logits agree to within 5e-3, not to float rounding.
    /// </summary>
    [Fact]
    public void BuiltInModelMatchesLlamaCppAcrossItsWholeContext()
    {
        using var model = Model.Load(BuiltInModel);
        int context = model.Config.ContextLength;
        Assert.True(context >= 512, $"the built-in model's context is {context} tokens, expected at least 512");
        var verses = new[]
        {
            "And Naomi said unto her two daughters in law, Go, return each to her mother's house:",
            "the LORD deal kindly with you, as ye have dealt with the dead, and with me.",
            "And Ruth said, Intreat me not to leave thee, or to return from following after thee:",
            "for whither thou goest, I will go; and where thou lodgest, I will lodge:",
            "thy people shall be my people, and thy God my God.",
        };
        var ids = new List<int>(model.Tokenizer.Encode(verses[0]));
        for (int i = 1; ids.Count < context - 24; i++)
            ids.AddRange(model.Tokenizer.Encode(verses[i % verses.Length], addSpecial: false));
        ids = ids.Take(context - 24).ToList();

        var transformer = model.CreateTransformer(cache: KvCacheOptions.F32); // as the oracle's cache
        var logits = transformer.Evaluate(ids.ToArray(), 0).ToArray();
        using var oracle = new LlamaCppOracle(BuiltInModel, contextSize: context);
        var expected = oracle.PromptLogits(ids);
        int worst = 0;
        for (int v = 1; v < expected.Length; v++)
            if (Math.Abs(expected[v] - logits[v]) > Math.Abs(expected[worst] - logits[worst])) worst = v;
        Assert.True(Math.Abs(expected[worst] - logits[worst]) < 5e-3,
            $"logit {worst} at position {ids.Count - 1}: llama.cpp {expected[worst]}, ClockLM {logits[worst]}");

        var ours = new List<int>();
        for (int i = 0; i < 24; i++)
        {
            ours.Add(LlamaCppOracle.ArgMax(logits));
            if (i < 23) logits = transformer.Forward(ours[^1], ids.Count + i).ToArray();
        }
        Assert.Equal(oracle.Greedy(ids, 24), ours);
    }
}
