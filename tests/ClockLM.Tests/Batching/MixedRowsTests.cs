using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Tests.Batching;

/// <summary>One pass over rows of several sequences — a prompt chunk, a token with drafts after it, a single token —
/// against each sequence run alone.</summary>
public sealed class MixedRowsTests
{
    private static void AssertBitIdentical(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"{what}[{i}]: {actual[i]} vs alone {expected[i]}");
    }

    [Theory]
    [InlineData("Q4_0", 1)]
    [InlineData("Q8_0", 2)]
    [InlineData("F16", 2)]
    [InlineData("Q4_K_M", 1)]
    public void EveryRowEqualsItsSequenceRunAlone(string scheme, int threads)
    {
        using var dir = new TempDir();
        string path = dir.File("m.gguf");
        int dim = scheme.StartsWith("Q4_K") ? 512 : 320;
        var config = new LlamaConfig(Dim: dim, HiddenDim: 2 * dim, Layers: 2, Heads: 4, KvHeads: 2, VocabSize: 300, ContextLength: 64);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(300), ClockLM.Models.QuantizationScheme.Parse(scheme), std: 0.05f);
        using var model = Model.Load(path);
        using var pool = new WorkerPool(threads - 1);
        var decoder = new BatchDecoder(model.Config, model.Weights, pool);
        int[] Ids(int n, int seed) => Enumerable.Range(0, n).Select(i => (i * 31 + seed * 7 + 3) % 300).ToArray();

        // A: a prompt chunk of 6 after 4 cached tokens, logits of its last row only. B: a token and three drafts after
        // 9 cached tokens. C: one token after 2 cached tokens.
        var (a, b, c) = (decoder.CreateSequence(32), decoder.CreateSequence(32), decoder.CreateSequence(32));
        var (a1, b1, c1) = (model.CreateTransformer(32, pool), model.CreateTransformer(32, pool), model.CreateTransformer(32, pool));
        int[] pa = Ids(10, 1), pb = Ids(13, 2), pc = Ids(3, 3);
        foreach (var (s, alone, p, cached) in new[] { (a, a1, pa, 4), (b, b1, pb, 9), (c, c1, pc, 2) })
        {
            s.Evaluate(p.AsSpan(0, cached), 0);
            alone.Evaluate(p.AsSpan(0, cached), 0);
        }
        // Rows without logits first (A's chunk but its last token), then rows with logits (A's last, B's four, C's one).
        var sequences = new[] { a, a, a, a, a, a, b, b, b, b, c };
        int[] tokens = [.. pa[4..10], .. pb[9..13], pc[2]];
        int[] positions = [4, 5, 6, 7, 8, 9, 9, 10, 11, 12, 2];
        decoder.Run(sequences, tokens, positions, logitsFrom: 5);

        var vocab = model.Config.VocabSize;
        AssertBitIdentical(a1.Evaluate(pa.AsSpan(4), 4), decoder.RowLogits(5), "A's last row");
        var bAlone = new float[4 * vocab];
        b1.Evaluate(pb.AsSpan(9), 9, bAlone);
        for (int i = 0; i < 4; i++) AssertBitIdentical(bAlone.AsSpan(i * vocab, vocab), decoder.RowLogits(6 + i), $"B's row {i}");
        AssertBitIdentical(c1.Forward(pc[2], 2), decoder.RowLogits(10), "C's row");
        foreach (var (s, alone) in new[] { (a, a1), (b, b1), (c, c1) })
        {
            AssertBitIdentical(alone.Residual, s.Residual, "residual after the last row");
            Assert.Equal(alone.Position, s.Position);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => decoder.RowLogits(4)); // no logits for A's earlier rows

        // Each sequence goes on from its last row, as if it had run alone.
        decoder.Run([a, b, c], [7, 8, 9], [10, 13, 3], logitsFrom: 0);
        AssertBitIdentical(a1.Forward(7, 10), decoder.RowLogits(0), "A after");
        AssertBitIdentical(b1.Forward(8, 13), decoder.RowLogits(1), "B after");
        AssertBitIdentical(c1.Forward(9, 3), decoder.RowLogits(2), "C after");
    }

    [Fact]
    public void RowsOfOneSequenceMustBeAtConsecutivePositions()
    {
        using var model = Model.Load(SharedData.Stories260K, SharedData.Tok512);
        var decoder = new BatchDecoder(model.Config, model.Weights);
        var a = decoder.CreateSequence(16);
        var e = Assert.Throws<ArgumentException>(() => decoder.Run([a, a], [1, 2], [0, 2], logitsFrom: 0));
        Assert.Contains("positions 0 and 2", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => decoder.Run([a], [1], [0], logitsFrom: 2));
        decoder.Run([a], [1], [0], logitsFrom: 0);
        Assert.Equal(a.Logits.ToArray(), decoder.RowLogits(0).ToArray());
    }
}
