using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Sampling;

namespace ClockLM.Tests.Generation;

/// <summary>Speculative decoding gives the tokens decoding without drafts gives: greedy and sampled, with every kind of
/// drafter, whether the drafts are accepted or rejected.</summary>
public sealed class SpeculativeDecodingTests : IClassFixture<SpeculativeDecodingTests.Models>
{
    /// <summary>The built-in model as the target, and its own Q4_0 quantization as a draft model that mostly agrees.</summary>
    public sealed class Models : IDisposable
    {
        private readonly TempDir _dir = new();
        public Model Target { get; }
        public Model Draft { get; }

        public Models()
        {
            string builtIn = Path.Combine(SharedData.RepoRoot, "models", "clocklm-kjv.gguf");
            string draft = _dir.File("kjv-q4_0.gguf");
            ModelQuantizer.Quantize(builtIn, draft, QuantizationScheme.Parse("Q4_0"));
            Target = Model.Load(builtIn);
            Draft = Model.Load(draft);
        }

        public void Dispose()
        {
            Target.Dispose();
            Draft.Dispose();
            _dir.Dispose();
        }
    }

    private static readonly string[] Prompts = ["In the beginning", "And the LORD spake unto Moses, saying,", "Blessed are", "Thou"];
    private readonly Models _m;

    public SpeculativeDecodingTests(Models models) => _m = models;

    private SpeculativeOptions Options(string kind, int draftMax) => kind switch
    {
        "lookup" => new SpeculativeOptions { Lookup = 3, DraftMax = draftMax },
        "model" => new SpeculativeOptions { DraftModel = _m.Draft, DraftMax = draftMax, DraftPMin = 0 },
        _ => throw new ArgumentException(kind),
    };

    [Theory]
    [InlineData("lookup", 4)]
    [InlineData("lookup", 16)]
    [InlineData("model", 3)]
    [InlineData("model", 8)]
    public void GreedyOutputIsTheSameTokenForToken(string kind, int draftMax)
    {
        var generator = new Generator(_m.Target);
        var stats = new SpeculativeStats();
        foreach (string prompt in Prompts)
        {
            var plain = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 70, Sampler = SamplerOptions.Greedy });
            var drafted = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 70, Sampler = SamplerOptions.Greedy, Speculative = Options(kind, draftMax) });
            Assert.Equal(plain.GeneratedIds, drafted.GeneratedIds);
            Assert.Equal(plain.Text, drafted.Text);
            stats += drafted.Speculative!.Value;
        }
        // Both paths ran: drafts accepted (rows used) and rejected (rows dropped, the cache rolled back).
        Assert.True(stats.Accepted > 0, $"no draft was accepted: {stats}");
        Assert.True(stats.Accepted < stats.Drafted, $"every draft was accepted: {stats}");
    }

    /// <summary>Drafts and their roll backs in a KV cache of each type, and a context that fills and shifts twice: the
    /// tokens after each shift still follow the tokens decoding without drafts gives.</summary>
    [Theory]
    [InlineData("lookup", "f16")]
    [InlineData("lookup", "q8_0")]
    [InlineData("model", "f32")]
    [InlineData("model", "q8_0")]
    public void GreedyOutputIsTheSameThroughCacheTypesAndContextShifts(string kind, string cacheType)
    {
        var type = KvCacheOptions.ParseType(cacheType);
        var cache = new KvCacheOptions { KeyType = type, ValueType = type };
        var generator = new Generator(_m.Target, contextLength: 40, cache: cache);
        var stats = new SpeculativeStats();
        foreach (string prompt in Prompts[..2])
        {
            var options = new GenerationOptions { MaxNewTokens = 90, Sampler = SamplerOptions.Greedy, ContextShift = true, KeepTokens = 2 };
            var plain = generator.Generate(prompt, options);
            var drafted = generator.Generate(prompt, options with { Speculative = Options(kind, 6) });
            Assert.Equal(90, plain.GeneratedIds.Length);
            Assert.Equal(plain.GeneratedIds, drafted.GeneratedIds);
            stats += drafted.Speculative!.Value;
        }
        Assert.True(stats.Accepted > 0 && stats.Accepted < stats.Drafted, $"expected some drafts accepted and some rejected: {stats}");
    }

    [Theory]
    [InlineData("lookup")]
    [InlineData("model")]
    public void SampledOutputIsTheSameForTheSameSeed(string kind)
    {
        var generator = new Generator(_m.Target);
        var stats = new SpeculativeStats();
        for (ulong seed = 1; seed <= 6; seed++)
        {
            var sampler = new SamplerOptions { Temperature = 0.7f, TopK = 20, TopP = 0.9f, MinP = 0.05f, RepeatPenalty = 1.05f, Seed = seed };
            string prompt = Prompts[(int)seed % Prompts.Length];
            var plain = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 60, Sampler = sampler });
            var drafted = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 60, Sampler = sampler, Speculative = Options(kind, 6) });
            Assert.Equal(plain.GeneratedIds, drafted.GeneratedIds);
            stats += drafted.Speculative!.Value;
        }
        Assert.True(stats.Accepted > 0 && stats.Accepted < stats.Drafted, $"expected some drafts accepted and some rejected: {stats}");
    }

    /// <summary>Drafts a fixed continuation whatever the sequence: right when the model goes that way, wrong otherwise.</summary>
    private sealed class FixedDrafter(int[] continuation) : IDrafter
    {
        public int Draft(ReadOnlySpan<int> tokens, Span<int> draft)
        {
            int n = Math.Min(draft.Length, continuation.Length);
            continuation.AsSpan(0, n).CopyTo(draft);
            return n;
        }
    }

    /// <summary>
    /// Sampling at temperature 1 from stories260K: the first two tokens after a prompt, the first from a verification
    /// pass's first row and the second from its next row when the first matched the draft (else from a new pass). Their
    /// distribution over 1,500 seeds with drafts must match plain sampling's over 1,500 other seeds: a two-sample
    /// chi-square test at p = 0.001 (token pairs seen 10 times or more are their own category, the rest pooled).
    /// </summary>
    [Fact]
    public void SampledTokensAreDistributedAsWithoutDrafts()
    {
        using var model = Model.Load(SharedData.Stories260K, SharedData.Tok512);
        int[] prompt = model.Tokenizer.Encode("Once upon a time, there was a little").ToArray();
        var greedy = new Generator(model).Generate(prompt, new GenerationOptions { MaxNewTokens = 4, Sampler = SamplerOptions.Greedy });
        var options = new SpeculativeOptions { Lookup = 1, DraftMax = 4 };
        const int runs = 1500;

        (int, int) FirstTwo(ulong seed, bool drafted)
        {
            var target = model.CreateTransformer(64);
            var sampler = new Sampler(model.Config.VocabSize, new SamplerOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = seed });
            var decoder = new SpeculativeDecoder(target, new FixedDrafter(greedy.GeneratedIds), options);
            decoder.Evaluate(prompt.AsSpan(0, prompt.Length - 1), 0);
            int n = prompt.Length;
            var logits = drafted ? decoder.Forward(prompt[^1], n - 1) : target.Forward(prompt[^1], n - 1);
            int first = sampler.Sample(logits);
            logits = drafted ? decoder.Forward(first, n) : target.Forward(first, n);
            return (first, sampler.Sample(logits));
        }

        var withDrafts = new Dictionary<(int, int), int>();
        var without = new Dictionary<(int, int), int>();
        long accepted = 0;
        for (int r = 0; r < runs; r++)
        {
            var a = FirstTwo((ulong)(r + 1), drafted: true);
            var b = FirstTwo((ulong)(r + 1 + runs), drafted: false);
            withDrafts[a] = withDrafts.GetValueOrDefault(a) + 1;
            without[b] = without.GetValueOrDefault(b) + 1;
            if (a.Item1 == greedy.GeneratedIds[0]) accepted++;
        }
        Assert.InRange(accepted, runs / 10, runs - runs / 10); // the draft was accepted sometimes and rejected sometimes

        var common = withDrafts.Keys.Union(without.Keys).Where(k => withDrafts.GetValueOrDefault(k) + without.GetValueOrDefault(k) >= 10).ToList();
        double chi2 = 0;
        foreach (var k in common)
        {
            double x = withDrafts.GetValueOrDefault(k), y = without.GetValueOrDefault(k);
            chi2 += (x - y) * (x - y) / (x + y);
        }
        double restX = runs - common.Sum(k => withDrafts.GetValueOrDefault(k)), restY = runs - common.Sum(k => without.GetValueOrDefault(k));
        int df = common.Count - 1;
        if (restX + restY > 0) { chi2 += (restX - restY) * (restX - restY) / (restX + restY); df++; }
        Assert.True(df >= 3, $"only {df + 1} categories: the test would say little");
        // Wilson-Hilferty: the chi-square quantile at p = 0.001 (z = 3.09).
        double t = 2.0 / (9 * df), critical = df * Math.Pow(1 - t + 3.09 * Math.Sqrt(t), 3);
        Assert.True(chi2 < critical, $"chi-square {chi2:F1} with {df} degrees of freedom is beyond {critical:F1}");
    }

    /// <summary>Drafts the next ids counting up from the last token: 7 → 8, 9, 10, …</summary>
    private sealed class CountingDrafter : IDrafter
    {
        public int Draft(ReadOnlySpan<int> tokens, Span<int> draft)
        {
            for (int i = 0; i < draft.Length; i++) draft[i] = tokens[^1] + 1 + i;
            return draft.Length;
        }
    }

    [Fact]
    public void ADraftThatRunsPastTheContextIsCutToIt()
    {
        var target = _m.Target.CreateTransformer(24);
        var decoder = new SpeculativeDecoder(target, new CountingDrafter(), new SpeculativeOptions { Lookup = 1, DraftMax = 16 });
        var plain = _m.Target.CreateTransformer(24);
        int[] prompt = [1, 50, 60, 70];
        decoder.Evaluate(prompt, 0);
        plain.Evaluate(prompt, 0);
        for (int pos = 4; pos < 24; pos++)
        {
            int token = 10 + pos - 4; // the draft's own tokens: every one accepted until the context ends
            var expected = plain.Forward(token, pos).ToArray();
            Assert.Equal(expected, decoder.Forward(token, pos).ToArray());
        }
        // Position 4 ran with 16 drafts (5..20), all accepted; position 21 with the 2 that fit (22, 23).
        Assert.Equal(new SpeculativeStats(Passes: 2, Drafted: 18, Accepted: 18), decoder.Stats);
    }

    [Fact]
    public void ADraftModelWithAnotherVocabularyIsRefusedWithBothFilesNamed()
    {
        using var stories = Model.Load(SharedData.Stories260K, SharedData.Tok512);
        var e = Assert.Throws<ArgumentException>(() => new SpeculativeOptions { DraftModel = stories }.CreateDrafter(_m.Target, 64, null));
        Assert.Contains(SharedData.Stories260K, e.Message);
        Assert.Contains(_m.Target.Path, e.Message);
        Assert.Contains("512 tokens, the target's 1024", e.Message);
    }

    [Theory]
    [InlineData(0, 0, 16, 0, "needs a draft model or a lookup")]
    [InlineData(3, 0, 0, 0, "draft-max is 0")]
    [InlineData(3, 0, 4, 5, "draft-min is 5")]
    [InlineData(-1, 0, 4, 0, "lookup n-gram size is -1")]
    [InlineData(2, 1.5f, 4, 0, "draft-p-min is 1.5")]
    public void BadOptionsAreNamed(int lookup, float pMin, int max, int min, string expected)
    {
        var options = new SpeculativeOptions { Lookup = lookup, DraftPMin = pMin, DraftMax = max, DraftMin = min };
        Assert.Contains(expected, options.Validate());
    }
}
