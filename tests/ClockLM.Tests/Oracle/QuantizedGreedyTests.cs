using ClockLM.Models;
using ClockLM.Tests.Training;

namespace ClockLM.Tests.Oracle;

/// <summary>
/// 32 free-running greedy tokens, ClockLM against llama.cpp, on a trained model (ClockLM's built-in model) written in
/// each weight type. On random weights the top two logits are often within the few-percent noise that 8-bit
/// activation rounding adds (see <see cref="LlamaLogitsTests"/>), so identical free-running greedy sequences there would
/// depend on luck; a trained model's choices have real margins, and the two engines must make every one of them alike.
/// </summary>
[Collection("llama.cpp")]
public class QuantizedGreedyTests
{
    private const int Count = 32;

    [Theory]
    [InlineData("F32")]
    [InlineData("F16")]
    [InlineData("BF16")]
    [InlineData("Q8_0")]
    [InlineData("Q4_0")]
    public void TrainedModelGreedyTokensMatchLlamaCpp(string type)
    {
        using var dir = new TempDir();
        string path = dir.File($"kjv-{type}.gguf");
        ModelQuantizer.Quantize(LlamaCppTrainedModelTests.BuiltInModel, path, QuantizationScheme.Parse(type));
        using var model = Model.Load(path);
        using var oracle = new LlamaCppOracle(path, contextSize: 128);
        foreach (string prompt in new[] { "In the beginning", "And the LORD spake unto Moses, saying,", "Blessed are the", "Then Jesus answered and said" })
        {
            var ids = model.Tokenizer.Encode(prompt);
            var transformer = model.CreateTransformer(cache: KvCacheOptions.F32); // as the oracle's cache
            var logits = transformer.Evaluate(ids.ToArray(), 0).ToArray();
            var ours = new List<int>();
            for (int i = 0; i < Count; i++)
            {
                ours.Add(LlamaCppOracle.ArgMax(logits));
                if (i < Count - 1) logits = transformer.Forward(ours[^1], ids.Count + i).ToArray();
            }
            Assert.Equal(oracle.Greedy(ids, Count), ours);
        }
    }
}
