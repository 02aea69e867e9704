using ClockLM.Sampling;

namespace ClockLM.Tests.Sampling;

public class SamplerTests
{
    private static readonly float[] Logits = [1.0f, 3.0f, 2.0f, -1.0f, 2.5f, 0.0f];

    /// <summary>Draws many samples and returns how often each id came up.</summary>
    private static int[] Histogram(SamplerOptions options, int draws = 4000, float[]? logits = null, int[]? recent = null)
    {
        logits ??= Logits;
        var sampler = new Sampler(logits.Length, options);
        var counts = new int[logits.Length];
        for (int i = 0; i < draws; i++) counts[sampler.Sample(logits, recent)]++;
        return counts;
    }

    private static double[] Softmax(float[] logits, float temperature = 1)
    {
        double max = logits.Max();
        var e = logits.Select(l => Math.Exp((l - max) / temperature)).ToArray();
        return e.Select(v => v / e.Sum()).ToArray();
    }

    [Fact]
    public void GreedyPicksTheLargestLogit()
    {
        var sampler = new Sampler(Logits.Length, SamplerOptions.Greedy);
        Assert.Equal(1, sampler.Sample(Logits));
        Assert.Equal(4, sampler.Sample([0f, 0f, 0f, 0f, 9f, 0f]));
    }

    [Fact]
    public void TemperatureOneWithoutTruncationFollowsSoftmax()
    {
        var counts = Histogram(new SamplerOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0 }, draws: 20000);
        var expected = Softmax(Logits);
        for (int i = 0; i < Logits.Length; i++)
            Assert.InRange(counts[i] / 20000.0, expected[i] - 0.015, expected[i] + 0.015);
    }

    [Fact]
    public void LowTemperatureSharpensHighTemperatureFlattens()
    {
        var cold = Histogram(new SamplerOptions { Temperature = 0.2f, TopK = 0, TopP = 1, MinP = 0 });
        var hot = Histogram(new SamplerOptions { Temperature = 5f, TopK = 0, TopP = 1, MinP = 0 });
        Assert.True(cold[1] > 3600, $"cold: the best token came up {cold[1]} of 4000 times");
        Assert.True(hot[3] > 200, $"hot: the worst token came up only {hot[3]} of 4000 times");
    }

    [Fact]
    public void TopKKeepsOnlyTheKBest()
    {
        var counts = Histogram(new SamplerOptions { Temperature = 1, TopK = 2, TopP = 1, MinP = 0 });
        Assert.Equal(0, counts[0] + counts[2] + counts[3] + counts[5]);
        Assert.True(counts[1] > 0 && counts[4] > 0);
        // Renormalised over the two kept: p(1) = e^3 / (e^3 + e^2.5)
        Assert.InRange(counts[1] / 4000.0, 0.622 - 0.03, 0.622 + 0.03);
    }

    [Fact]
    public void TopPKeepsTheSmallestSetReachingP()
    {
        // Probabilities sorted: id1 .443, id4 .269, id2 .163, … ; p = 0.7 needs ids 1 and 4 (0.712).
        var counts = Histogram(new SamplerOptions { Temperature = 1, TopK = 0, TopP = 0.7f, MinP = 0 });
        Assert.Equal(0, counts[0] + counts[2] + counts[3] + counts[5]);
        Assert.True(counts[1] > 0 && counts[4] > 0);
    }

    [Fact]
    public void MinPDropsTokensBelowAFractionOfTheBest()
    {
        // p(id2)/p(id1) = e^-1 = 0.37, p(id0)/p(id1) = e^-2 = 0.135: min-p 0.2 keeps ids 1, 4, 2.
        var counts = Histogram(new SamplerOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0.2f });
        Assert.Equal(0, counts[0] + counts[3] + counts[5]);
        Assert.True(counts[2] > 0);
    }

    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits()
    {
        // With greedy: id1 (3.0) penalised by 2 becomes 1.5 < id4's 2.5.
        var sampler = new Sampler(Logits.Length, new SamplerOptions { Temperature = 0, RepeatPenalty = 2f });
        Assert.Equal(4, sampler.Sample(Logits, [1, 1, 1]));
        Assert.Equal(1, sampler.Sample(Logits, [5]));
        // Only the last RepeatLastN tokens count.
        var window = new Sampler(Logits.Length, new SamplerOptions { Temperature = 0, RepeatPenalty = 2f, RepeatLastN = 1 });
        Assert.Equal(1, window.Sample(Logits, [1, 4]));
        // A negative logit is multiplied, so it falls further.
        float[] negative = [-1f, -0.6f];
        var neg = new Sampler(2, new SamplerOptions { Temperature = 0, RepeatPenalty = 2f });
        Assert.Equal(0, neg.Sample(negative, [1])); // -0.6 * 2 = -1.2 < -1
    }

    [Fact]
    public void SameSeedSameSequenceDifferentSeedDifferentSequence()
    {
        int[] Draw(ulong seed)
        {
            var s = new Sampler(Logits.Length, new SamplerOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = seed });
            return Enumerable.Range(0, 50).Select(_ => s.Sample(Logits)).ToArray();
        }
        Assert.Equal(Draw(7), Draw(7));
        Assert.NotEqual(Draw(7), Draw(8));
    }

    [Theory]
    [InlineData(-1, 0.9f, 0.05f, 1.0f)]
    [InlineData(40, 0f, 0.05f, 1.0f)]
    [InlineData(40, 1.5f, 0.05f, 1.0f)]
    [InlineData(40, 0.9f, -0.1f, 1.0f)]
    [InlineData(40, 0.9f, 0.05f, 0f)]
    public void BadOptionsAreRejectedWithTheirName(int topK, float topP, float minP, float penalty)
    {
        var options = new SamplerOptions { TopK = topK, TopP = topP, MinP = minP, RepeatPenalty = penalty };
        var e = Assert.Throws<ArgumentException>(() => new Sampler(10, options));
        Assert.Matches("top-k|top-p|min-p|repeat penalty", e.Message);
    }
}
