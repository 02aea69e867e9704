using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Tests.Cli;

namespace ClockLM.Tests.Generation;

/// <summary>
/// Perplexity and KL divergence on stories260K and a held-out story text (data/perplexity): the chunking, the saved
/// log-probabilities (llama-perplexity's file format), the comparison of a run with itself and with compact caches,
/// and the command's output and errors. The agreement with llama.cpp's own numbers is checked in the oracle tests.
/// </summary>
public class PerplexityTests
{
    private static string StoriesText => Path.Combine(SharedData.RepoRoot, "data", "perplexity", "stories-heldout.txt");

    private static int[] Tokens(Model model) => model.Tokenizer.Encode(File.ReadAllText(StoriesText), addSpecial: true).ToArray();

    [Fact]
    public void ChunksScoreTheirSecondHalfAndTheEstimateRunsOverThem()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var tokens = Tokens(model);
        var estimates = new List<double>();
        var all = Perplexity.Measure(model, tokens, new PerplexityOptions { Context = 64, KvCache = KvCacheOptions.F32 }, progress: p => estimates.Add(p.Estimate));
        Assert.Equal(tokens.Length / 64, all.Chunks);
        Assert.Equal(all.Chunks * 31, all.Tokens); // 64 - 1 - 32 per chunk
        Assert.Equal(all.Chunks, estimates.Count);
        Assert.Equal(all.Value, estimates[^1], 12);
        Assert.Equal(Math.Exp(all.MeanNll), all.Value, 12);
        Assert.InRange(all.Value, 1.5, 20); // stories260K reads simple stories well
        Assert.True(all.Uncertainty > 0 && all.Uncertainty < all.Value / 5, $"± {all.Uncertainty}");

        // --chunks 2 is the first two chunks: the same as the running estimate after two.
        var two = Perplexity.Measure(model, tokens, new PerplexityOptions { Context = 64, Chunks = 2, KvCache = KvCacheOptions.F32 });
        Assert.Equal(2, two.Chunks);
        Assert.Equal(estimates[1], two.Value, 12);

        var e = Assert.Throws<ArgumentException>(() => Perplexity.Measure(model, tokens[..127], new PerplexityOptions { Context = 64 }));
        Assert.Contains("127 tokens; a context of 64 needs at least 128", e.Message);
    }

    [Fact]
    public void EncodedRowsHoldTheLogProbabilitiesToHalfAStep()
    {
        var logits = Tensors.TestVectors.Gaussian(301, seed: 3, scale: 6f);
        logits[7] = 40f; // far above the rest: everything more than 16 below it is clamped
        var row = new ushort[LogProbabilityFile.RowWords(301)];
        Assert.Equal(2 * 151 + 4, row.Length);
        double nll = LogProbabilityFile.Encode(logits, 12, row);
        Assert.Equal(-Perplexity.LogSoftmax(logits, 12), nll, 4);
        float max = logits.Max(), min = Math.Max(logits.Min(), max - 16), step = (max - min) / 65535f;
        for (int i = 0; i < logits.Length; i++)
        {
            double exact = Perplexity.LogSoftmax(logits, i), stored = LogProbabilityFile.LogProbability(row, i);
            if (logits[i] > min) Assert.True(Math.Abs(stored - exact) <= step / 2 + 1e-5, $"token {i}: {stored} vs {exact}");
            else Assert.True(stored >= exact, $"token {i}: clamped {stored} below {exact}");
        }
    }

    [Fact]
    public void ARunComparedWithItsOwnBaseDoesNotDiverge()
    {
        using var model = Model.Load(SharedData.Stories260K);
        using var dir = new TempDir();
        string path = dir.File("base.kld");
        var options = new PerplexityOptions { Context = 64, KvCache = KvCacheOptions.F32 };
        PerplexityResult measured;
        using (var writer = new LogProbabilityWriter(File.Create(path)))
            measured = Perplexity.Measure(model, Tokens(model), options, baseOutput: writer);
        Assert.Equal(LogProbabilityFile.Bytes(64, 512, measured.Chunks), new FileInfo(path).Length);

        using var reader = LogProbabilityReader.Open(path);
        Assert.Equal((64, 512, measured.Chunks), (reader.Context, reader.VocabSize, reader.Chunks));
        var same = KlDivergence.Measure(model, reader, KvCacheOptions.F32);
        Assert.Equal(measured.Tokens, same.Tokens);
        Assert.Equal(1.0, same.SameTop.Value);
        // Only the base's 16-bit rounding separates them.
        Assert.True(Math.Abs(same.MeanKl.Value) < 1e-5, $"mean KL {same.MeanKl.Value}");
        Assert.True(Math.Abs(same.LogRatio.Value) < 1e-4, $"ln ratio {same.LogRatio.Value}");
        Assert.Equal(measured.Value, same.Perplexity.Value, 9);
        Assert.True(same.Correlation > 0.9999, $"correlation {same.Correlation}");
        Assert.Equal(11, same.KlPercentiles.Count);

        // A Q8_0 cache moves the distributions, a little.
        using var again = LogProbabilityReader.Open(path);
        var q8 = KlDivergence.Measure(model, again, KvCacheOptions.Both(ClockLM.Tensors.GgmlType.Q8_0));
        Assert.True(q8.MeanKl.Value > same.MeanKl.Value && q8.MeanKl.Value < 0.05, $"Q8_0: mean KL {q8.MeanKl.Value}");
        Assert.True(q8.SameTop.Value > 0.9, $"Q8_0: same top {q8.SameTop.Value}");
    }

    [Fact]
    public void BaseFilesThatDoNotFitAreRefusedWithTheirNames()
    {
        using var dir = new TempDir();
        string path = dir.File("bad.kld");
        File.WriteAllText(path, "not a base at all, just text");
        Assert.Contains("bad.kld: not a KL-divergence base", Assert.Throws<InvalidDataException>(() => LogProbabilityReader.Open(path)).Message);

        using var model = Model.Load(SharedData.Stories260K);
        using (var writer = new LogProbabilityWriter(File.Create(path)))
            Perplexity.Measure(model, Tokens(model), new PerplexityOptions { Context = 64, Chunks = 2 }, baseOutput: writer);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^10]);
        var e = Assert.Throws<InvalidDataException>(() => LogProbabilityReader.Open(path));
        Assert.Contains($"{bytes.Length - 10} bytes, but a context of 64, 512 tokens and 2 chunks take {bytes.Length}", e.Message);
    }

    [Fact]
    public void TheCommandPrintsTheRunningAndFinalEstimatesAndComparesWithASavedRun()
    {
        using var dir = new TempDir();
        string basePath = dir.File("f32.kld");
        var run = ClockLMProcess.Run("perplexity", "-m", SharedData.Stories260K, "-f", StoriesText, "-c", "64", "--chunks", "3",
            "--cache-type-k", "f32", "--cache-type-v", "f32", "--kl-divergence-base", basePath);
        Assert.True(run.ExitCode == 0, run.StdErr);
        Assert.Matches(@"^\[1\]\d+\.\d{4},\[2\]\d+\.\d{4},\[3\](\d+\.\d{4}),\s*Final estimate: PPL = (\d+\.\d{4}) ± \d+\.\d{5}\s*$", run.StdOut);
        var m = System.Text.RegularExpressions.Regex.Match(run.StdOut, @"\[3\](\d+\.\d{4}),.*PPL = (\d+\.\d{4})", System.Text.RegularExpressions.RegexOptions.Singleline);
        Assert.Equal(m.Groups[1].Value, m.Groups[2].Value);
        Assert.True(File.Exists(basePath));
        Assert.False(File.Exists(basePath + ".partial"));

        var compare = ClockLMProcess.Run("perplexity", "-m", SharedData.Stories260K, "--kl-divergence-base", basePath, "--kl-divergence", "--cache-type-k", "q8_0");
        Assert.True(compare.ExitCode == 0, compare.StdErr);
        Assert.Contains("Mean    KLD:", compare.StdOut);
        Assert.Contains("Same top p:", compare.StdOut);

        var tooShort = ClockLMProcess.Run("perplexity", "-m", SharedData.Stories260K, "-f", StoriesText, "-c", "4096");
        Assert.Equal(1, tooShort.ExitCode);
        Assert.Contains("a context of 4096 needs at least 8192", tooShort.StdErr);
        var noFile = ClockLMProcess.Run("perplexity", "-m", SharedData.Stories260K);
        Assert.Equal(1, noFile.ExitCode);
        Assert.Contains("--file is required", noFile.StdErr);
        var noBase = ClockLMProcess.Run("perplexity", "-m", SharedData.Stories260K, "--kl-divergence");
        Assert.Contains("--kl-divergence needs --kl-divergence-base", noBase.StdErr);
    }
}
