using ClockLM.Formats;
using ClockLM.Models;

namespace ClockLM.Tests.Models;

/// <summary>The forward pass on the genuine stories260K checkpoint against llama2.c run.c's greedy output.</summary>
public class Stories260KForwardTests
{
    [Fact]
    public void CheckpointHeaderIsRead()
    {
        using var ckpt = Llama2cCheckpoint.Open(SharedData.Stories260K);
        Assert.Equal(new LlamaConfig(64, 172, 5, 8, 4, 512, 512), ckpt.Config);
        Assert.True(ckpt.SharedClassifier);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void GreedyContinuationOfReferencePromptIdsMatchesRunC(int which)
    {
        var reference = ReferenceOutputs.Stories260K[which];
        using var ckpt = Llama2cCheckpoint.Open(SharedData.Stories260K);
        var model = new Transformer(ckpt.Config, ckpt.Weights, ckpt.Config.ContextLength);

        // run.c: feed ids[pos] at pos; while inside the prompt the next id is forced, afterwards it is the argmax.
        int promptLength = PromptLength(reference);
        var produced = new List<int> { reference.Ids[0] };
        int token = reference.Ids[0];
        for (int pos = 0; pos < reference.Steps; pos++)
        {
            var logits = model.Forward(token, pos);
            int next = pos + 1 < promptLength ? reference.Ids[pos + 1] : ArgMax(logits);
            produced.Add(next);
            if (next == 1) break;
            token = next;
        }
        Assert.Equal(reference.Ids, produced);
    }

    /// <summary>Ids (BOS included) that make up the prompt in the reference: BOS and four prompt tokens for both
    /// prompts; the tokenizer tests check that encoding the prompt text gives exactly these ids.</summary>
    private static int PromptLength(ReferenceOutputs.Greedy reference) => 5;

    internal static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }
}
