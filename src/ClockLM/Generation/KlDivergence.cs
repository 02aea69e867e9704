using System.Diagnostics;
using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Generation;

/// <summary>A value and its standard error.</summary>
public readonly record struct Estimate(double Value, double Uncertainty)
{
    /// <summary>"1.2345 ± 0.0012" with <paramref name="format"/>.</summary>
    public string ToString(string format) => $"{Value.ToString(format)} ± {Uncertainty.ToString(format)}";
}

/// <summary>The comparison after a chunk, or at the end (where the distributions of the per-token values are given too).</summary>
/// <param name="Tokens">Tokens compared.</param>
/// <param name="Perplexity">The model's perplexity, PPL(Q).</param>
/// <param name="BasePerplexity">The base's perplexity on the same tokens, PPL(base).</param>
/// <param name="Correlation">Correlation of the two per-token log-likelihoods.</param>
/// <param name="LogRatio">ln(PPL(Q) / PPL(base)).</param>
/// <param name="Ratio">PPL(Q) / PPL(base).</param>
/// <param name="Difference">PPL(Q) - PPL(base).</param>
/// <param name="MeanKl">Mean KL divergence of the model's next-token distributions from the base's, in nats.</param>
/// <param name="MeanDeltaP">Mean of p(token) - p_base(token) for the text's tokens.</param>
/// <param name="RmsDeltaP">Root mean square of that difference.</param>
/// <param name="SameTop">Fraction of positions where the model's most likely token is the base's.</param>
/// <param name="KlPercentiles">KL divergence at 0 (min), 0.1, 1, 5, 10, 50, 90, 95, 99, 99.9 and 100 % (max); final only.</param>
/// <param name="DeltaPPercentiles">Δp at the same fractions plus 25 % and 75 %; final only.</param>
public sealed record KlDivergenceSummary(int Tokens, Estimate Perplexity, Estimate BasePerplexity, double Correlation,
    Estimate LogRatio, Estimate Ratio, Estimate Difference, Estimate MeanKl, Estimate MeanDeltaP, Estimate RmsDeltaP,
    Estimate SameTop, IReadOnlyList<(double Percent, double Value)> KlPercentiles, IReadOnlyList<(double Percent, double Value)> DeltaPPercentiles);

/// <summary>
/// How far a model's next-token distributions are from a base's (saved by <see cref="Perplexity"/> into a
/// <see cref="LogProbabilityFile"/>, usually of the F32 model): the base file's chunks are run again, llama-perplexity's
/// way, and at every scored position KL(base ‖ model) = Σ_i p_base(i) (log p_base(i) - log p(i)) over the tokens whose
/// base log-probability is above -16, the two perplexities and their ratio, Δp = p(token) - p_base(token), and whether
/// the most likely tokens agree. Uncertainties are standard errors, as llama-perplexity's.
/// </summary>
public static class KlDivergence
{
    /// <summary>Compares <paramref name="model"/> with the base in <paramref name="baseFile"/>, whose chunks and context
    /// it uses; <paramref name="progress"/> receives the summary so far after every chunk (without percentiles).</summary>
    /// <exception cref="ArgumentException">The base covers another vocabulary size.</exception>
    public static KlDivergenceSummary Measure(Model model, LogProbabilityReader baseFile, KvCacheOptions? cache = null, int? microBatch = null,
        WorkerPool? pool = null, Action<int, KlDivergenceSummary>? progress = null)
    {
        int n = baseFile.Context, vocab = model.Config.VocabSize, first = n / 2;
        if (baseFile.VocabSize != vocab)
            throw new ArgumentException($"the base's log-probabilities cover {baseFile.VocabSize} tokens, this model's vocabulary {vocab}");
        var transformer = model.CreateTransformer(n, pool, cache);
        if (microBatch is { } ub) transformer.MicroBatch = ub;
        var logits = new float[(long)n * vocab];
        var chunk = new int[n];
        int rowWords = LogProbabilityFile.RowWords(vocab), scored = LogProbabilityFile.ScoredPerChunk(n);
        var rows = new ushort[scored * rowWords];
        var sums = new Sums(baseFile.Chunks * scored);
        var clock = Stopwatch.StartNew();
        for (int c = 0; c < baseFile.Chunks; c++)
        {
            baseFile.ReadChunk(rows);
            Perplexity.Run(transformer, model, baseFile.Tokens, c, chunk, logits);
            for (int i = 0; i < scored; i++)
                sums.Add(logits.AsSpan((first + i) * vocab, vocab), rows.AsSpan(i * rowWords, rowWords), baseFile.Tokens[c * n + first + i + 1]);
            progress?.Invoke(c + 1, sums.Summary(withPercentiles: false));
        }
        return sums.Summary(withPercentiles: true);
    }

    /// <summary>Running sums over the compared tokens, as llama-perplexity keeps them (float where it computes in float).</summary>
    private sealed class Sums(int capacity)
    {
        private double _nll, _nll2, _nllBase, _nllBase2, _nllNllBase, _kl, _kl2, _dp, _dp2, _dp4;
        private int _sameTop, _count;
        private readonly List<float> _kls = new(capacity), _dps = new(capacity);

        public void Add(ReadOnlySpan<float> logits, ReadOnlySpan<ushort> baseRow, int token)
        {
            float max = logits[0];
            int top = 0;
            for (int i = 1; i < logits.Length; i++)
                if (logits[i] > max) (max, top) = (logits[i], i);
            double sum = 0;
            for (int i = 0; i < logits.Length; i++) sum += MathF.Exp(logits[i] - max);
            float logSum = (float)Math.Log(sum);
            float nll = max + logSum - logits[token];
            float nllBase = -LogProbabilityFile.LogProbability(baseRow, token);
            _nll += nll; _nll2 += nll * nll;
            _nllBase += nllBase; _nllBase2 += nllBase * nllBase;
            _nllNllBase += nll * nllBase;

            float logNorm = max + logSum; // log p(i) = logits[i] - logNorm
            double kl = 0;
            int baseTop = 0;
            float baseTopLog = 0;
            for (int i = 0; i < logits.Length; i++)
            {
                float logBase = LogProbabilityFile.LogProbability(baseRow, i);
                if (i == 0 || logBase > baseTopLog) (baseTopLog, baseTop) = (logBase, i);
                if (logBase > -16f) kl += MathF.Exp(logBase) * (logBase - logits[i] + logNorm);
            }
            _kl += kl; _kl2 += kl * kl;
            if (top == baseTop) _sameTop++;
            float dp = MathF.Exp(-nll) - MathF.Exp(-nllBase);
            double dp2 = dp * dp;
            _dp += dp; _dp2 += dp2; _dp4 += dp2 * dp2;
            _kls.Add((float)kl);
            _dps.Add(dp);
            _count++;
        }

        public KlDivergenceSummary Summary(bool withPercentiles)
        {
            var logPpl = Mean(_nll, _nll2);
            var logPplBase = Mean(_nllBase, _nllBase2);
            double covariance = _count < 10 ? 0 : (_nllNllBase / _count - _nll / _count * (_nllBase / _count)) / (_count - 1);
            double ppl = Math.Exp(logPpl.Value), pplBase = Math.Exp(logPplBase.Value);
            double logRatio = logPpl.Value - logPplBase.Value;
            double logRatioError = Math.Sqrt(Math.Max(0, Sq(logPpl.Uncertainty) + Sq(logPplBase.Uncertainty) - 2 * covariance));
            double pplError = ppl * logPpl.Uncertainty, pplBaseError = pplBase * logPplBase.Uncertainty;
            var msDp = Mean(_dp2, _dp4);
            double rms = Math.Sqrt(msDp.Value);
            double same = (double)_sameTop / _count;
            return new KlDivergenceSummary(_count,
                new Estimate(ppl, pplError),
                new Estimate(pplBase, pplBaseError),
                logPpl.Uncertainty * logPplBase.Uncertainty > 0 ? covariance / (logPpl.Uncertainty * logPplBase.Uncertainty) : double.NaN,
                new Estimate(logRatio, logRatioError),
                new Estimate(Math.Exp(logRatio), Math.Exp(logRatio) * logRatioError),
                new Estimate(ppl - pplBase, Math.Sqrt(Math.Max(0, Sq(pplError) + Sq(pplBaseError) - 2 * ppl * pplBase * covariance))),
                Mean(_kl, _kl2),
                Mean(_dp, _dp2),
                new Estimate(rms, rms > 0 ? 0.5 / rms * msDp.Uncertainty : 0),
                new Estimate(same, _count > 1 ? Math.Sqrt(same * (1 - same) / (_count - 1)) : 0),
                withPercentiles ? Percentiles(_kls, [0, 0.1, 1, 5, 10, 50, 90, 95, 99, 99.9, 100]) : [],
                withPercentiles ? Percentiles(_dps, [0, 0.1, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 100]) : []);
        }

        /// <summary>The mean and its standard error (0 for ten values or fewer, as llama-perplexity).</summary>
        private Estimate Mean(double sum, double sum2)
        {
            if (_count < 1) return new Estimate(0, 0);
            double mean = sum / _count, variance = sum2 / _count - mean * mean;
            return new Estimate(mean, variance > 0 && _count > 10 ? Math.Sqrt(variance / (_count - 1)) : 0);
        }

        private static double Sq(double x) => x * x;

        /// <summary>Linear interpolation between the sorted values, as llama-perplexity's percentiles.</summary>
        private static List<(double, double)> Percentiles(List<float> values, double[] percents)
        {
            var sorted = values.Order().ToArray();
            var result = new List<(double, double)>();
            foreach (double percent in percents)
            {
                double p = percent / 100 * (sorted.Length - 1);
                int i = (int)p;
                double value = i + 1 < sorted.Length ? (1 - (p - i)) * sorted[i] + (p - i) * sorted[i + 1] : sorted[^1];
                result.Add((percent, value));
            }
            return result;
        }
    }
}
