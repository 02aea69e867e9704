using ClockLM.Models;

namespace ClockLM.Clock;

/// <summary>Timings and work of one cycle (layer) of one token, summed from its stage events.</summary>
/// <param name="Position">Token position.</param>
/// <param name="Layer">Layer.</param>
/// <param name="StageSeconds">Seconds per stage, indexed by <see cref="Stage"/>.</param>
/// <param name="WeightBytes">Weight bytes the cycle read.</param>
/// <param name="KvBytes">KV-cache bytes read and written.</param>
/// <param name="Flops">Floating-point operations.</param>
public sealed record CycleSummary(int Position, int Layer, double[] StageSeconds, long WeightBytes, long KvBytes, long Flops)
{
    /// <summary>The whole cycle, seconds.</summary>
    public double Seconds => StageSeconds.Sum();

    /// <summary>Bytes moved (weights and cache) per second, GB/s.</summary>
    public double GigabytesPerSecond => (WeightBytes + KvBytes) / Math.Max(Seconds, 1e-12) / 1e9;

    /// <summary>Floating-point operations per second, GFLOP/s.</summary>
    public double Gflops => Flops / Math.Max(Seconds, 1e-12) / 1e9;
}

/// <summary>Everything the trace knows about one token: its timings, per-cycle summaries, lens and attention.</summary>
/// <param name="Position">Position.</param>
/// <param name="Token">Token id.</param>
/// <param name="Generated">True when the model chose the token (greedy); false for prompt tokens.</param>
/// <param name="Timing">The token event (whole-token time, embedding, commit).</param>
/// <param name="Cycles">One summary per layer.</param>
/// <param name="Lens">Per layer, the logit lens's top tokens after that cycle.</param>
/// <param name="Attention">Per layer, per head, the token's attention over positions 0..Position.</param>
public sealed record TracedToken(int Position, int Token, bool Generated, TokenEvent Timing, CycleSummary[] Cycles,
    TokenProbability[][] Lens, HeadAttention[][] Attention);

/// <summary>
/// A traced run: a prompt and its greedy continuation, run once with a <see cref="CycleRecorder"/> for timings (nothing
/// else attached, so the timings are the engine's), then again with an <see cref="ActivationCapture"/> for the logit lens
/// and the attention view.
/// </summary>
public sealed class ClockTrace
{
    private ClockTrace(LlamaConfig config, TracedToken[] tokens, CycleRecorder recorder)
    {
        Config = config;
        Tokens = tokens;
        Recorder = recorder;
    }

    /// <summary>The model's shape.</summary>
    public LlamaConfig Config { get; }

    /// <summary>Every token that ran, prompt then generated.</summary>
    public TracedToken[] Tokens { get; }

    /// <summary>The raw events of the timed run.</summary>
    public CycleRecorder Recorder { get; }

    /// <summary>
    /// Traces <paramref name="promptIds"/> and up to <paramref name="newTokens"/> greedy tokens (fewer if
    /// <paramref name="stop"/> says a token ends generation or the context fills) on <paramref name="transformer"/>,
    /// from position 0. The lens keeps <paramref name="lensTopK"/> tokens per cycle.
    /// </summary>
    public static ClockTrace Run(Transformer transformer, int[] promptIds, int newTokens, int lensTopK = 5, Func<int, bool>? stop = null)
    {
        if (promptIds.Length == 0) throw new ArgumentException("the prompt has no tokens", nameof(promptIds));
        if (promptIds.Length > transformer.ContextLength)
            throw new ArgumentException($"the prompt is {promptIds.Length} tokens but the context holds {transformer.ContextLength}", nameof(promptIds));
        var config = transformer.Config;

        // Warm-up, so the timings are of compiled code rather than of the JIT's first tier: the first token, repeated
        // for half a second (or 400 times), with a throw-away recorder attached so the observer path is compiled too.
        var warmUp = System.Diagnostics.Stopwatch.StartNew();
        var previousObserver = transformer.Observer;
        for (int i = 0; i < 400 && warmUp.Elapsed.TotalSeconds < 0.5; i++)
        {
            transformer.Observer = i % 2 == 0 ? new CycleRecorder() : null;
            transformer.Forward(promptIds[0], 0);
        }

        // Timed run: every token with its logits committed, so each token's table includes the commit.
        var recorder = new CycleRecorder(promptIds.Length + newTokens, config.Layers);
        var ids = new List<int>();
        transformer.Observer = recorder;
        try
        {
            int token = promptIds[0];
            for (int pos = 0; pos < transformer.ContextLength; pos++)
            {
                ids.Add(token);
                var logits = transformer.Forward(token, pos);
                if (pos + 1 < promptIds.Length) { token = promptIds[pos + 1]; continue; }
                if (ids.Count - promptIds.Length >= newTokens) break;
                token = ArgMax(logits);
                if (stop?.Invoke(token) == true) break;
            }
        }
        finally
        {
            transformer.Observer = previousObserver;
        }

        // Analysis run: the same tokens again, capturing the residual after each cycle and the attention patterns.
        var capture = ActivationCapture.Run(transformer, ids.ToArray(), 0, [ActivationPoint.ResidPost, ActivationPoint.AttentionPattern]);
        var lens = new LogitLens(transformer);
        var traced = new TracedToken[ids.Count];
        for (int pos = 0; pos < ids.Count; pos++)
        {
            var cycles = new CycleSummary[config.Layers];
            var lensRows = new TokenProbability[config.Layers][];
            var attention = new HeadAttention[config.Layers][];
            for (int layer = 0; layer < config.Layers; layer++)
            {
                var seconds = new double[StageNames.Count];
                long weights = 0, kv = 0, flops = 0;
                foreach (var e in recorder.Stages)
                {
                    if (e.Position != pos || e.Layer != layer) continue;
                    seconds[(int)e.Stage] += e.Seconds;
                    weights += e.WeightBytes;
                    kv += e.KvBytesRead + e.KvBytesWritten;
                    flops += e.Flops;
                }
                cycles[layer] = new CycleSummary(pos, layer, seconds, weights, kv, flops);
                lensRows[layer] = lens.Top(capture.Get(ActivationPoint.ResidPost, layer, pos), lensTopK);
                attention[layer] = HeadAttention.FromPattern(layer, pos, capture.Get(ActivationPoint.AttentionPattern, layer, pos), config.Heads);
            }
            traced[pos] = new TracedToken(pos, ids[pos], pos >= promptIds.Length, recorder.Tokens[pos], cycles, lensRows, attention);
        }
        return new ClockTrace(config, traced, recorder);
    }

    /// <summary>Weight bytes one token reads: every layer, the final norm and the output head (the embedding row is negligible).</summary>
    public static long WeightBytesPerToken(LlamaWeights weights) =>
        weights.Layers.Sum(l => l.ByteCount) + weights.Output.ByteCount + 4L * weights.FinalNorm.Length;

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }
}
