using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Training;

/// <summary>
/// How well a model predicts a text: the total negative log-likelihood of its tokens, in nats, and the bytes they
/// encode. Bits per byte, nats / bytes / ln 2, compares models whatever their tokenizers.
/// </summary>
/// <param name="Tokens">Tokens predicted (every token of the text, once).</param>
/// <param name="Bytes">UTF-8 bytes of the text as scored: its non-empty lines, each with its newline.</param>
/// <param name="Nats">Σ −ln p(token | the tokens before it in its window).</param>
/// <param name="Context">The window length used: BOS and up to Context − 1 tokens of text.</param>
public sealed record HeldOutScore(int Tokens, long Bytes, double Nats, int Context)
{
    /// <summary>Mean loss per token (the training loss's unit).</summary>
    public double NatsPerToken => Nats / Tokens;

    /// <summary>e^(nats per token).</summary>
    public double Perplexity => Math.Exp(NatsPerToken);

    /// <summary>Nats / bytes / ln 2.</summary>
    public double BitsPerByte => Nats / Bytes / Math.Log(2);

    /// <summary>
    /// Scores <paramref name="text"/> with the inference engine. The text is encoded as training encodes it (each
    /// non-empty line with its newline, by the model's tokenizer, no BOS) into one stream of tokens, which is cut into
    /// consecutive windows of context − 1 tokens; each window is run after a BOS from position 0, so every token is
    /// predicted exactly once, from the tokens before it in its window. Log-softmax is taken in double.
    /// </summary>
    /// <param name="model">The model (its tokenizer must have a BOS token).</param>
    /// <param name="text">The held-out text.</param>
    /// <param name="context">Window length; default and maximum the model's context length.</param>
    /// <param name="pool">Threads for the forward pass.</param>
    public static HeldOutScore Measure(Model model, string text, int? context = null, WorkerPool? pool = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(text);
        int window = context ?? model.Config.ContextLength;
        if (window < 2 || window > model.Config.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(context), window, $"the window must be 2 to the model's context length {model.Config.ContextLength}");
        int bos = model.Tokenizer.BosId;
        if (bos < 0) throw new ArgumentException("the model's tokenizer has no BOS token to start each window", nameof(model));

        var lines = TrainingCorpus.Lines(text);
        var stream = new List<int>();
        long bytes = 0;
        foreach (string line in lines)
        {
            stream.AddRange(model.Tokenizer.Encode(line + "\n", addSpecial: false));
            bytes += System.Text.Encoding.UTF8.GetByteCount(line) + 1;
        }
        if (stream.Count == 0) throw new ArgumentException("the text has no tokens to score", nameof(text));

        // An F32 cache: the model's own attention, as training computes it (F16 keys and values would round them).
        var transformer = model.CreateTransformer(window, pool, KvCacheOptions.F32);
        int vocab = model.Config.VocabSize;
        var inputs = new int[window - 1];
        var logits = new float[(window - 1) * vocab];
        double nats = 0;
        for (int start = 0; start < stream.Count; start += window - 1)
        {
            // Positions 0..count−1 read BOS then the window's tokens but its last; position t predicts token start + t.
            int count = Math.Min(window - 1, stream.Count - start);
            inputs[0] = bos;
            for (int t = 1; t < count; t++) inputs[t] = stream[start + t - 1];
            transformer.Evaluate(inputs.AsSpan(0, count), 0, logits.AsSpan(0, count * vocab));
            for (int t = 0; t < count; t++)
                nats += NegativeLogSoftmax(logits.AsSpan(t * vocab, vocab), stream[start + t]);
        }
        return new HeldOutScore(stream.Count, bytes, nats, window);
    }

    /// <summary>−ln softmax(logits)[target] = max + ln Σ e^(l − max) − l[target], in double.</summary>
    private static double NegativeLogSoftmax(ReadOnlySpan<float> logits, int target)
    {
        double max = double.NegativeInfinity;
        foreach (float l in logits) max = Math.Max(max, l);
        double sum = 0;
        foreach (float l in logits) sum += Math.Exp(l - max);
        return max + Math.Log(sum) - logits[target];
    }
}
