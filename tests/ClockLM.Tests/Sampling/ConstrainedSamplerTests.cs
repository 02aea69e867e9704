using ClockLM.Sampling;

namespace ClockLM.Tests.Sampling;

/// <summary>The sampler's fast paths against the plain ones they replace.</summary>
public sealed class ConstrainedSamplerTests
{
    /// <summary>Allows a fixed set, and refuses every unconstrained choice so the allowed set is always applied.</summary>
    private sealed class FixedSet(int vocab, IEnumerable<int> ids) : TokenConstraint
    {
        private readonly ulong[] _mask = Build(vocab, ids);
        private static ulong[] Build(int vocab, IEnumerable<int> ids)
        {
            var mask = new ulong[(vocab + 63) / 64];
            foreach (int id in ids) mask[id >> 6] |= 1UL << (id & 63);
            return mask;
        }
        public override bool Allows(int token) => false;
        public override ReadOnlySpan<ulong> AllowedTokens() => _mask;
        public override void Accept(int token) => Assert.True(((_mask[token >> 6] >> (token & 63)) & 1) != 0, $"token {token} is not allowed");
        public override bool IsComplete => false;
    }

    /// <summary>Sampling over the allowed candidates only equals the full chain with the others at -infinity, draw for
    /// draw (the reference discards one draw per step, as the constrained sampler's refused first choice used one).</summary>
    [Theory]
    [InlineData(0f, 0, 1f, 0f, 1f)]
    [InlineData(0f, 0, 1f, 0f, 1.3f)]
    [InlineData(1f, 0, 1f, 0f, 1f)]
    [InlineData(0.8f, 40, 0.95f, 0.05f, 1f)]
    [InlineData(1.2f, 5, 0.9f, 0f, 1.5f)]
    [InlineData(0.7f, 0, 0.5f, 0.1f, 0.8f)]
    public void AllowedSubsetEqualsMinusInfinityMask(float temperature, int topK, float topP, float minP, float penalty)
    {
        const int vocab = 1000;
        var rng = new Random(9);
        var logits = Enumerable.Range(0, vocab).Select(_ => (float)Math.Round(rng.NextDouble() * 8, 1)).ToArray(); // ties on purpose
        var allowed = Enumerable.Range(0, vocab).Where(_ => rng.Next(4) == 0).ToArray();
        var options = new SamplerOptions { Temperature = temperature, TopK = topK, TopP = topP, MinP = minP, RepeatPenalty = penalty, Seed = 77 };
        var constrained = new Sampler(vocab, options, new FixedSet(vocab, allowed));
        var plain = new Sampler(vocab, options);
        var masked = Enumerable.Repeat(float.NegativeInfinity, vocab).ToArray();
        foreach (int id in allowed) masked[id] = logits[id];
        var recent = new List<int> { allowed[0], allowed[1], 3, allowed[1] };
        for (int step = 0; step < 300; step++)
        {
            plain.Sample(logits, recent.ToArray());
            int expected = plain.Sample(masked, recent.ToArray());
            Assert.Equal(expected, constrained.Sample(logits, recent.ToArray()));
            recent.Add(expected);
        }
        Assert.Equal(300, constrained.ConstrainedRedraws);
    }

    /// <summary>The heap-based top-k selection equals a full sort's first k, ties (lower id first) included.</summary>
    [Fact]
    public void PartialSortEqualsFullSortPrefix()
    {
        var rng = new Random(4);
        foreach (int n in new[] { 1, 2, 7, 64, 1000 })
            foreach (int k in new[] { 1, 2, 5, 40, n })
            {
                if (k > n) continue;
                var c = Enumerable.Range(0, n).Select(i => ((float)rng.Next(0, 20), i)).ToArray();
                var expected = c.OrderByDescending(x => x.Item1).ThenBy(x => x.Item2).Take(k).ToArray();
                var actual = ((float Logit, int Id)[])c.Clone();
                Sampler.PartialSortDescending(actual, k);
                Assert.Equal(expected, actual[..k]);
            }
    }

    /// <summary>The key sort equals a comparison sort in the chain's order, with ties, negative zero and infinities.</summary>
    [Fact]
    public void KeySortEqualsComparisonSort()
    {
        var rng = new Random(8);
        float[] special = [0f, -0f, float.NegativeInfinity, float.PositiveInfinity, float.MaxValue, -float.MaxValue, float.Epsilon, -float.Epsilon, 1e-30f, -1e-30f];
        var sampler = new Sampler(2000, SamplerOptions.Greedy);
        foreach (int n in new[] { 1, 2, 10, 2000 })
        {
            var c = Enumerable.Range(0, n).Select(i => (rng.Next(3) == 0 ? special[rng.Next(special.Length)] : (float)Math.Round(rng.NextDouble() * 10 - 5, 1), i)).ToArray();
            var expected = c.OrderByDescending(x => x.Item1).ThenBy(x => x.Item2).ToArray();
            var actual = ((float Logit, int Id)[])c.Clone();
            sampler.SortDescending(actual);
            Assert.Equal(expected.Select(x => x.Item2), actual.Select(x => x.Id));
        }
    }
}
