using ClockLM.Features;
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

/// <summary>One pass through the processor: a prompt chunk (its tokens through every cycle together) or one token.</summary>
/// <param name="Position">Position of the pass's first token.</param>
/// <param name="Tokens">The token ids of the pass, in position order.</param>
/// <param name="Generated">True for a token the model chose (greedy); false for the prompt.</param>
/// <param name="Timing">The pass's event (whole pass, embedding, commit).</param>
/// <param name="Cycles">One summary per layer, of the whole pass.</param>
public sealed record TracedPass(int Position, int[] Tokens, bool Generated, TokenEvent Timing, CycleSummary[] Cycles)
{
    /// <summary>Tokens in the pass.</summary>
    public int Rows => Tokens.Length;

    /// <summary>Position of the pass's last token.</summary>
    public int LastPosition => Position + Tokens.Length - 1;
}

/// <summary>What the trace knows about one token: its pass, and its logit lens and attention.</summary>
/// <param name="Position">Position.</param>
/// <param name="Token">Token id.</param>
/// <param name="Generated">True when the model chose the token (greedy); false for prompt tokens.</param>
/// <param name="Pass">Index of the token's pass in <see cref="ClockTrace.Passes"/>.</param>
/// <param name="Lens">Per layer, the logit lens's top tokens after that cycle.</param>
/// <param name="Attention">Per layer, per head, the token's attention over positions 0..Position.</param>
public sealed record TracedToken(int Position, int Token, bool Generated, int Pass, TokenProbability[][] Lens, HeadAttention[][] Attention)
{
    /// <summary>Per sparse autoencoder of the trace, the token's most active features at its hook point.</summary>
    public IReadOnlyList<TracedFeatures> Features { get; init; } = [];
}

/// <summary>A token's most active features in one sparse autoencoder.</summary>
/// <param name="Hook">The hook point the autoencoder reads (<c>blocks.3.hook_resid_post</c>).</param>
/// <param name="Top">The most active features, strongest first (only those above 0).</param>
public sealed record TracedFeatures(string Hook, FeatureActivation[] Top);

/// <summary>
/// A traced run: a prompt and its greedy continuation, run the way production runs them — the prompt in chunks of
/// <see cref="Transformer.MicroBatch"/> tokens, then one token at a time — once with a <see cref="CycleRecorder"/> for
/// timings (nothing else attached, so the timings are the engine's), then again with an <see cref="ActivationCapture"/>
/// for the logit lens and the attention view.
/// </summary>
public sealed class ClockTrace
{
    private ClockTrace(LlamaConfig config, TracedPass[] passes, TracedToken[] tokens, CycleRecorder recorder)
    {
        Config = config;
        Passes = passes;
        Tokens = tokens;
        Recorder = recorder;
    }

    /// <summary>The model's shape.</summary>
    public LlamaConfig Config { get; }

    /// <summary>Every pass that ran: the prompt's chunks, then each generated token.</summary>
    public TracedPass[] Passes { get; }

    /// <summary>Every token that ran, prompt then generated.</summary>
    public TracedToken[] Tokens { get; }

    /// <summary>The raw events of the timed run.</summary>
    public CycleRecorder Recorder { get; }

    /// <summary>The hook points of the sparse autoencoders whose features the tokens carry, in order.</summary>
    public IReadOnlyList<string> FeatureHooks { get; private init; } = [];

    /// <summary>
    /// Traces <paramref name="promptIds"/> and up to <paramref name="newTokens"/> greedy tokens (fewer if
    /// <paramref name="stop"/> says a token ends generation or the context fills) on <paramref name="transformer"/>,
    /// from position 0. The lens keeps <paramref name="lensTopK"/> tokens per cycle; every token gets the
    /// <paramref name="featureTopK"/> most active features of each of <paramref name="saes"/> at its hook point.
    /// </summary>
    /// <exception cref="ArgumentException">The prompt is empty or too long, or an autoencoder reads a hook point the
    /// model does not have or of another width.</exception>
    public static ClockTrace Run(Transformer transformer, int[] promptIds, int newTokens, int lensTopK = 5, Func<int, bool>? stop = null,
        IReadOnlyList<SparseAutoencoder>? saes = null, int featureTopK = 5)
    {
        if (promptIds.Length == 0) throw new ArgumentException("the prompt has no tokens", nameof(promptIds));
        if (promptIds.Length > transformer.ContextLength)
            throw new ArgumentException($"the prompt is {promptIds.Length} tokens but the context holds {transformer.ContextLength}", nameof(promptIds));
        var config = transformer.Config;
        saes ??= [];
        var saePoints = saes.Select(sae => FeaturePoint(sae, config)).ToArray();

        // Warm-up, so the timings are of compiled code rather than of the JIT's first tier: a short prompt and a token,
        // repeated for half a second (or 100 times), with a throw-away recorder attached every other time so the
        // observer path is compiled too.
        var warmUp = System.Diagnostics.Stopwatch.StartNew();
        var previousObserver = transformer.Observer;
        var warmPrompt = promptIds.AsSpan(0, Math.Min(promptIds.Length, Math.Min(8, transformer.ContextLength - 1)));
        for (int i = 0; i < 100 && warmUp.Elapsed.TotalSeconds < 0.5; i++)
        {
            transformer.Observer = i % 2 == 0 ? new CycleRecorder() : null;
            if (warmPrompt.Length > 1) transformer.Evaluate(warmPrompt, 0);
            transformer.Forward(promptIds[0], warmPrompt.Length);
        }

        // Timed run: the prompt in chunks, then each generated token, as production runs them.
        var recorder = new CycleRecorder(promptIds.Length + newTokens, config.Layers);
        var ids = new List<int>(promptIds);
        transformer.Observer = recorder;
        try
        {
            var logits = transformer.Evaluate(promptIds, 0);
            for (int pos = promptIds.Length; pos < transformer.ContextLength && ids.Count - promptIds.Length < newTokens; pos++)
            {
                int token = ArgMax(logits);
                if (stop?.Invoke(token) == true) break;
                ids.Add(token);
                logits = transformer.Forward(token, pos);
            }
        }
        finally
        {
            transformer.Observer = previousObserver;
        }

        // Each pass's stage events, summed per cycle (a pass is known by its first position).
        var passOf = new Dictionary<int, int>();
        for (int p = 0; p < recorder.Tokens.Count; p++) passOf[recorder.Tokens[p].Position] = p;
        var seconds = new double[recorder.Tokens.Count, config.Layers, StageNames.Count];
        var work = new (long Weights, long Kv, long Flops)[recorder.Tokens.Count, config.Layers];
        foreach (var e in recorder.Stages)
        {
            int p = passOf[e.Position];
            seconds[p, e.Layer, (int)e.Stage] += e.Seconds;
            var (weights, kv, flops) = work[p, e.Layer];
            work[p, e.Layer] = (weights + e.WeightBytes, kv + e.KvBytesRead + e.KvBytesWritten, flops + e.Flops);
        }
        var passes = new TracedPass[recorder.Tokens.Count];
        for (int p = 0; p < passes.Length; p++)
        {
            var timing = recorder.Tokens[p];
            var cycles = new CycleSummary[config.Layers];
            for (int layer = 0; layer < config.Layers; layer++)
            {
                var stageSeconds = new double[StageNames.Count];
                for (int s = 0; s < stageSeconds.Length; s++) stageSeconds[s] = seconds[p, layer, s];
                var (weights, kv, flops) = work[p, layer];
                cycles[layer] = new CycleSummary(timing.Position, layer, stageSeconds, weights, kv, flops);
            }
            passes[p] = new TracedPass(timing.Position, ids.GetRange(timing.Position, timing.Rows).ToArray(),
                timing.Position >= promptIds.Length, timing, cycles);
        }

        // Analysis run: the same tokens again, capturing the residual after each cycle and the attention patterns.
        var capture = ActivationCapture.Run(transformer, ids.ToArray(), 0,
            [ActivationPoint.ResidPost, ActivationPoint.AttentionPattern, .. saePoints.Select(p => p.Point)]);
        var lens = new LogitLens(transformer);
        var traced = new TracedToken[ids.Count];
        for (int pos = 0, pass = 0; pos < ids.Count; pos++)
        {
            while (passes[pass].LastPosition < pos) pass++;
            var lensRows = new TokenProbability[config.Layers][];
            var attention = new HeadAttention[config.Layers][];
            for (int layer = 0; layer < config.Layers; layer++)
            {
                lensRows[layer] = lens.Top(capture.Get(ActivationPoint.ResidPost, layer, pos), lensTopK);
                attention[layer] = HeadAttention.FromPattern(layer, pos, capture.Get(ActivationPoint.AttentionPattern, layer, pos), config.Heads);
            }
            var features = saes.Select((sae, i) =>
                new TracedFeatures(sae.HookName, sae.TopFeatures(capture.Get(saePoints[i].Point, saePoints[i].Layer, pos), featureTopK))).ToArray();
            traced[pos] = new TracedToken(pos, ids[pos], pos >= promptIds.Length, pass, lensRows, attention) { Features = features };
        }
        return new ClockTrace(config, passes, traced, recorder) { FeatureHooks = saes.Select(s => s.HookName).ToArray() };
    }

    /// <summary>The hook point <paramref name="sae"/> reads, checked against the model's shape.</summary>
    /// <exception cref="ArgumentException">ClockLM has no such hook point, the model has no such layer, or the widths differ.</exception>
    public static (ActivationPoint Point, int Layer) FeaturePoint(SparseAutoencoder sae, LlamaConfig config)
    {
        (ActivationPoint Point, int Layer) hook;
        try
        {
            hook = ActivationPoints.Parse(sae.HookName);
        }
        catch (FormatException e)
        {
            throw new ArgumentException($"the sparse autoencoder reads {sae.HookName}, which ClockLM does not have: {e.Message}", e);
        }
        if (hook.Layer >= config.Layers) throw new ArgumentException($"the sparse autoencoder reads {sae.HookName}; the model has layers 0..{config.Layers - 1}");
        if (hook.Point == ActivationPoint.AttentionPattern || ActivationPoints.Width(hook.Point, config) != sae.InputWidth)
            throw new ArgumentException($"the sparse autoencoder reads {sae.InputWidth} values at {sae.HookName}; the model has " +
                (hook.Point == ActivationPoint.AttentionPattern ? "a growing width there" : $"{ActivationPoints.Width(hook.Point, config)}"));
        return hook;
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
