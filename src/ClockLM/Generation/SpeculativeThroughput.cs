using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Tensors;

namespace ClockLM.Generation;

/// <summary>Decode speed with and without speculative decoding, on one prompt, greedy: the rows of
/// <see cref="SpeculativeThroughput.Measure"/>.</summary>
/// <param name="Plain">Generated tokens per second without drafts (test "tgN").</param>
/// <param name="Drafted">The same with drafts (test "tgN+draft").</param>
/// <param name="Stats">Passes, drafted and accepted tokens of the drafted repetitions, in all.</param>
/// <param name="Tokens">Tokens generated per repetition (fewer than asked when the model ended the text).</param>
public sealed record SpeculativeThroughputResult(ThroughputResult Plain, ThroughputResult Drafted, SpeculativeStats Stats, int Tokens)
{
    /// <summary>Drafted over plain tokens per second, medians.</summary>
    public double Speedup => Drafted.Median / Plain.Median;
}

/// <summary>Measures what speculative decoding gains on a real prompt (drafts need real text to be accepted).</summary>
public static class SpeculativeThroughput
{
    /// <summary>
    /// Generates <paramref name="tokens"/> tokens greedily after <paramref name="prompt"/>, without and with drafts,
    /// <paramref name="repetitions"/> times each, alternating (after one warm-up of each), on a pool of
    /// <paramref name="threads"/>. Every drafted run must give the plain run's tokens exactly.
    /// </summary>
    /// <exception cref="InvalidOperationException">A drafted run's tokens differ from the plain run's.</exception>
    public static SpeculativeThroughputResult Measure(Model model, SpeculativeOptions speculative, int[] prompt, int tokens,
        int threads, int repetitions)
    {
        ArgumentNullException.ThrowIfNull(speculative);
        if (tokens < 1) throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "need at least one token");
        if (repetitions < 1) throw new ArgumentOutOfRangeException(nameof(repetitions), repetitions, "need at least one repetition");
        using var pool = new WorkerPool(threads - 1);
        int context = Math.Min(model.Config.ContextLength, prompt.Length + tokens + 1);
        var generator = new Generator(model, context, pool);
        var plain = new GenerationOptions { MaxNewTokens = tokens, Sampler = SamplerOptions.Greedy };
        var drafted = plain with { Speculative = speculative };

        var expected = generator.Generate(prompt, plain).GeneratedIds; // warm-up, and the tokens every run must give
        Check(generator.Generate(prompt, drafted), expected);
        var a = new double[repetitions];
        var b = new double[repetitions];
        var stats = new SpeculativeStats();
        for (int r = 0; r < repetitions; r++)
        {
            a[r] = generator.Generate(prompt, plain).DecodeTokensPerSecond;
            var run = generator.Generate(prompt, drafted);
            Check(run, expected);
            b[r] = run.DecodeTokensPerSecond;
            stats += run.Speculative!.Value;
        }
        return new SpeculativeThroughputResult(new ThroughputResult($"tg{tokens}", threads, a),
            new ThroughputResult($"tg{tokens}+draft", threads, b), stats, expected.Length);
    }

    private static void Check(GenerationResult run, int[] expected)
    {
        if (!run.GeneratedIds.AsSpan().SequenceEqual(expected))
            throw new InvalidOperationException($"speculative decoding gave other tokens than decoding without drafts (first difference at token {run.GeneratedIds.AsSpan().CommonPrefixLength(expected)})");
    }
}
