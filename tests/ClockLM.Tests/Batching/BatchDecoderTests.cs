using ClockLM.Clock;
using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Tests.Batching;

/// <summary>Several sequences decoded together against each sequence decoded alone.</summary>
public class BatchDecoderTests
{
    private static void AssertBitIdentical(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"{what}[{i}]: {actual[i]} vs alone {expected[i]}");
    }

    /// <summary>Prefills sequences with prompts of different lengths, then steps them together (greedy, each feeding back
    /// its own argmax) while twins run alone with Forward; logits must match bit for bit at every step.</summary>
    private static void AssertBatchEqualsAlone(Model model, WorkerPool? pool, int[] promptLengths, int steps, Action<Transformer>? attach = null)
    {
        var decoder = new BatchDecoder(model.Config, model.Weights, pool);
        int count = promptLengths.Length;
        var batched = new Transformer[count];
        var alone = new Transformer[count];
        var tokens = new int[count];
        var positions = new int[count];
        for (int s = 0; s < count; s++)
        {
            batched[s] = decoder.CreateSequence(48);
            alone[s] = model.CreateTransformer(48, pool);
            var prompt = Enumerable.Range(0, promptLengths[s]).Select(i => (i * 37 + s * 11 + 1) % model.Config.VocabSize).ToArray();
            batched[s].Evaluate(prompt, 0);
            tokens[s] = Argmax(alone[s].Evaluate(prompt, 0));
            positions[s] = prompt.Length;
        }
        if (attach is not null) attach(batched[1]);
        for (int step = 0; step < steps; step++)
        {
            decoder.Step(batched, tokens, positions);
            for (int s = 0; s < count; s++)
            {
                var expected = alone[s].Forward(tokens[s], positions[s]);
                AssertBitIdentical(expected, batched[s].Logits, $"step {step} sequence {s} logits");
                AssertBitIdentical(alone[s].Residual, batched[s].Residual, $"step {step} sequence {s} residual");
                Assert.Equal(positions[s], batched[s].Position);
                tokens[s] = Argmax(expected);
                positions[s]++;
            }
        }
    }

    private static int Argmax(ReadOnlySpan<float> v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    [Fact]
    public void Stories260KSequencesAtDifferentPositionsEqualEachAlone()
    {
        using var model = Model.Load(SharedData.Stories260K, SharedData.Tok512);
        AssertBatchEqualsAlone(model, pool: null, promptLengths: [5, 1, 12, 3], steps: 4);
    }

    [Theory]
    [InlineData("Q4_0")]
    [InlineData("Q8_0")]
    [InlineData("F16")]
    [InlineData("Q4_K_M")]
    public void RandomModelSequencesEqualEachAloneOnAPool(string scheme)
    {
        using var dir = new TempDir();
        string path = dir.File("m.gguf");
        int dim = scheme.StartsWith("Q4_K") ? 512 : 320;
        var config = new LlamaConfig(Dim: dim, HiddenDim: 2 * dim, Layers: 2, Heads: 4, KvHeads: 2, VocabSize: 300, ContextLength: 64);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(300), QuantizationScheme.Parse(scheme), std: 0.05f);
        using var model = Model.Load(path);
        using var pool = new WorkerPool(1);
        AssertBatchEqualsAlone(model, pool, promptLengths: [2, 9, 4], steps: 3);
    }

    [Fact]
    public void HookedSequenceRunsAloneInsideTheStepAndItsHookSeesEveryCycle()
    {
        using var model = Model.Load(SharedData.Stories260K, SharedData.Tok512);
        var seen = new List<(int Layer, int Position)>();
        AssertBatchEqualsAlone(model, pool: null, promptLengths: [3, 4, 2], steps: 2, attach: t => t.Hook = (point, layer, position, _) =>
        {
            if (point == ActivationPoint.ResidPre) seen.Add((layer, position));
        });
        var want = new[] { 4, 5 }.SelectMany(p => Enumerable.Range(0, model.Config.Layers).Select(l => (l, p))).ToList();
        Assert.Equal(want, seen);
    }

    [Fact]
    public void StepRejectsMismatchedAndRepeatedSequences()
    {
        using var model = Model.Load(SharedData.Stories260K, SharedData.Tok512);
        var decoder = new BatchDecoder(model.Config, model.Weights);
        var a = decoder.CreateSequence(16);
        var e = Assert.Throws<ArgumentException>(() => decoder.Step([a, a], [1, 2], [0, 1]));
        Assert.Contains("same sequence", e.Message);
        Assert.Throws<ArgumentException>(() => decoder.Step([a], [1, 2], [0]));
        Assert.Throws<ArgumentOutOfRangeException>(() => decoder.Step([a], [1], [16]));
        using var other = Model.Load(SharedData.Stories260K, SharedData.Tok512);
        e = Assert.Throws<ArgumentException>(() => decoder.Step([other.CreateTransformer(16)], [1], [0]));
        Assert.Contains("other weights", e.Message);
    }
}
