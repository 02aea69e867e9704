using System.Diagnostics;
using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Generation;

/// <summary>Settings of a perplexity measurement.</summary>
public sealed record PerplexityOptions
{
    /// <summary>Tokens per chunk (llama-perplexity's <c>-c</c>). Default 512.</summary>
    public int Context
    {
        get;
        init => field = value >= 4 ? value : throw new ArgumentOutOfRangeException(nameof(Context), value, "a chunk holds at least 4 tokens");
    } = 512;

    /// <summary>Most chunks to score (<c>--chunks</c>); all that the text fills when null.</summary>
    public int? Chunks
    {
        get;
        init => field = value is null or >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(Chunks), value, "score at least one chunk");
    }

    /// <summary>The KV cache's types (F16 when null).</summary>
    public KvCacheOptions? KvCache { get; init; }

    /// <summary>Tokens run through the layers together (<see cref="Transformer.MicroBatch"/>'s default when null).</summary>
    public int? MicroBatch { get; init; }
}

/// <summary>The running estimate after a chunk: perplexity over every token scored so far.</summary>
/// <param name="Chunk">Chunks done (1 for the first).</param>
/// <param name="Chunks">Chunks in all.</param>
/// <param name="Estimate">exp(mean negative log-likelihood) so far.</param>
/// <param name="Elapsed">Time since the measurement began.</param>
public sealed record PerplexityProgress(int Chunk, int Chunks, double Estimate, TimeSpan Elapsed);

/// <summary>A finished measurement.</summary>
/// <param name="Value">exp(mean negative log-likelihood of the scored tokens).</param>
/// <param name="Uncertainty">Its standard error, as llama-perplexity gives it: ppl · sqrt(var(nll) / (count - 1)).</param>
/// <param name="Chunks">Chunks scored.</param>
/// <param name="Tokens">Tokens scored.</param>
/// <param name="MeanNll">Mean negative log-likelihood, in nats per token.</param>
public sealed record PerplexityResult(double Value, double Uncertainty, int Chunks, int Tokens, double MeanNll);

/// <summary>
/// Perplexity the way llama.cpp's <c>llama-perplexity</c> measures it, so that numbers compare across engines: the text's
/// tokens (BOS first when the tokenizer adds one) are cut into chunks of <see cref="PerplexityOptions.Context"/>; each
/// chunk runs from an empty cache with its first token replaced by BOS, and only the second half of it is scored, so
/// every scored token has at least half a chunk of context: with n = context and first = n / 2, the logits of
/// positions first..n-2 are scored against the tokens at first+1..n-1, each as -log softmax(logits)[token], the
/// maximum subtracted, exponentials in float summed in double. The running estimate after each chunk is exp(mean); the
/// final estimate adds its standard error.
/// </summary>
public static class Perplexity
{
    /// <summary>Chunks a text of <paramref name="tokens"/> tokens fills at <paramref name="context"/> tokens each.</summary>
    public static int ChunksIn(int tokens, int context) => tokens / context;

    /// <summary>
    /// Scores <paramref name="tokens"/> (the whole text, as the tokenizer encodes it with its special tokens) with
    /// <paramref name="model"/>. <paramref name="progress"/> receives the running estimate after every chunk;
    /// <paramref name="baseOutput"/>, when given, receives every scored token's log-probabilities for a later KL-divergence
    /// comparison (<see cref="KlDivergence"/>).
    /// </summary>
    /// <exception cref="ArgumentException">The text is shorter than two chunks.</exception>
    public static PerplexityResult Measure(Model model, int[] tokens, PerplexityOptions options, WorkerPool? pool = null,
        Action<PerplexityProgress>? progress = null, LogProbabilityWriter? baseOutput = null)
    {
        int n = options.Context;
        if (tokens.Length < 2 * n)
            throw new ArgumentException($"the text is {tokens.Length} tokens; a context of {n} needs at least {2 * n} (two chunks)", nameof(tokens));
        int chunks = Math.Min(options.Chunks ?? int.MaxValue, ChunksIn(tokens.Length, n));
        int first = n / 2, vocab = model.Config.VocabSize;
        baseOutput?.Begin(n, vocab, chunks, tokens.AsSpan(0, chunks * n));

        var transformer = model.CreateTransformer(n, pool, options.KvCache);
        if (options.MicroBatch is { } ub) transformer.MicroBatch = ub;
        var logits = new float[(long)n * vocab];
        var chunk = new int[n];
        double nll = 0, nll2 = 0;
        int count = 0;
        var clock = Stopwatch.StartNew();
        for (int c = 0; c < chunks; c++)
        {
            Run(transformer, model, tokens, c, chunk, logits);
            for (int i = first; i < n - 1; i++)
            {
                var row = logits.AsSpan(i * vocab, vocab);
                int next = tokens[c * n + i + 1];
                double v = baseOutput is null ? -LogSoftmax(row, next) : baseOutput.Append(row, next);
                nll += v;
                nll2 += v * v;
            }
            baseOutput?.EndChunk();
            count += n - 1 - first;
            progress?.Invoke(new PerplexityProgress(c + 1, chunks, Math.Exp(nll / count), clock.Elapsed));
        }
        double mean = nll / count, variance = nll2 / count - mean * mean;
        double ppl = Math.Exp(mean);
        double uncertainty = variance > 0 ? Math.Sqrt(variance / (count - 1)) * ppl : double.NaN;
        return new PerplexityResult(ppl, uncertainty, chunks, count, mean);
    }

    /// <summary>Runs chunk <paramref name="c"/> (its first token replaced by BOS when the tokenizer adds one) from an
    /// empty cache, every position's logits into <paramref name="logits"/> (context, vocab).</summary>
    internal static void Run(Transformer transformer, Model model, ReadOnlySpan<int> tokens, int c, int[] chunk, float[] logits)
    {
        int n = chunk.Length;
        tokens.Slice(c * n, n).CopyTo(chunk);
        if (model.Tokenizer.AddBos && model.Tokenizer.BosId >= 0) chunk[0] = model.Tokenizer.BosId;
        transformer.Evaluate(chunk, 0, logits);
    }

    /// <summary>log softmax(logits)[token], as llama-perplexity computes it: the float maximum subtracted, the float
    /// exponentials summed in double.</summary>
    public static double LogSoftmax(ReadOnlySpan<float> logits, int token)
    {
        float max = logits[0];
        for (int i = 1; i < logits.Length; i++) max = MathF.Max(max, logits[i]);
        double sum = 0;
        for (int i = 0; i < logits.Length; i++) sum += MathF.Exp(logits[i] - max);
        return logits[token] - max - Math.Log(sum);
    }
}
