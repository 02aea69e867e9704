namespace ClockLM.Sampling;

/// <summary>
/// Chooses the next token from logits. The chain runs as llama.cpp's default one does:
/// repetition penalty, top-k, top-p, min-p, temperature, then a draw from the remaining distribution.
/// Buffers are allocated once; sampling a token allocates nothing.
/// <para>
/// With a <see cref="TokenConstraint"/> (a grammar, a JSON schema) the sampler first chooses as if unconstrained and
/// keeps that token when the constraint allows it, as llama.cpp's sampler does: for greedy decoding and for a plain draw
/// this is exactly the choice from the allowed tokens alone (a draw from p accepted when allowed, else redrawn from p
/// restricted to the allowed set, gives p(y) / p(allowed)), and it spares computing the allowed set when the model
/// already follows the grammar. Otherwise the logits of the tokens it forbids become -infinity and the chain runs again.
/// </para>
/// </summary>
public sealed class Sampler
{
    private readonly SamplerOptions _options;
    private readonly (float Logit, int Id)[] _candidates;
    private readonly float[] _probs;
    private readonly TokenConstraint? _constraint;
    private float[]? _masked;
    private ulong _rng;

    /// <summary>Creates a sampler for a vocabulary of <paramref name="vocabSize"/> tokens, choosing only tokens that
    /// <paramref name="constraint"/> allows when one is given (and telling it each token chosen).</summary>
    public Sampler(int vocabSize, SamplerOptions options, TokenConstraint? constraint = null)
    {
        if (options.Validate() is { } problem) throw new ArgumentException(problem, nameof(options));
        _options = options;
        _candidates = new (float, int)[vocabSize];
        _probs = new float[vocabSize];
        _rng = options.Seed == 0 ? 0x9E3779B97F4A7C15UL : options.Seed;
        _constraint = constraint;
    }

    /// <summary>The options in use.</summary>
    public SamplerOptions Options => _options;

    /// <summary>The constraint consulted at every step, if any.</summary>
    public TokenConstraint? Constraint => _constraint;

    /// <summary>Tokens whose unconstrained choice the constraint refused, so the allowed set was applied.</summary>
    public long ConstrainedRedraws { get; private set; }

    /// <summary>Picks the next token. <paramref name="recent"/> are the tokens seen so far (for the repetition penalty).</summary>
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> recent = default)
    {
        int id = SampleUnconstrained(logits, recent);
        if (_constraint is null) return id;
        if (!_constraint.Allows(id))
        {
            ConstrainedRedraws++;
            id = SampleUnconstrained(Mask(logits, _constraint.AllowedTokens()), recent);
        }
        _constraint.Accept(id);
        return id;
    }

    private int SampleUnconstrained(ReadOnlySpan<float> logits, ReadOnlySpan<int> recent)
    {
        bool penalty = _options.RepeatPenalty != 1.0f && _options.RepeatLastN > 0;
        // Greedy without a penalty needs no candidate list: the first id of the largest logit. (The chain is a method
        // of its own, so greedy decoding does not wait for it to be compiled.)
        return _options.Temperature <= 0 && !penalty ? ArgMax(logits) : SampleChain(logits, recent, penalty);
    }

    /// <summary>The logits with every token the bit set does not allow at -infinity.</summary>
    private float[] Mask(ReadOnlySpan<float> logits, ReadOnlySpan<ulong> allowed)
    {
        var masked = _masked ??= new float[logits.Length];
        masked.AsSpan().Fill(float.NegativeInfinity);
        for (int w = 0; w < allowed.Length; w++)
        {
            for (ulong bits = allowed[w]; bits != 0; bits &= bits - 1)
            {
                int id = w * 64 + System.Numerics.BitOperations.TrailingZeroCount(bits);
                if (id < logits.Length) masked[id] = logits[id];
            }
        }
        return masked;
    }

    /// <summary>The whole chain: penalty, truncations, temperature, draw.</summary>
    private int SampleChain(ReadOnlySpan<float> logits, ReadOnlySpan<int> recent, bool penalty)
    {
        int n = logits.Length;
        for (int i = 0; i < n; i++) _candidates[i] = (logits[i], i);
        var c = _candidates.AsSpan(0, n);

        if (penalty)
        {
            var window = recent.Length > _options.RepeatLastN ? recent[^_options.RepeatLastN..] : recent;
            for (int i = 0; i < window.Length; i++)
            {
                int id = window[i];
                // Each distinct token is penalised once, however often it occurs.
                if ((uint)id >= (uint)n || window[..i].Contains(id)) continue;
                ref float logit = ref c[id].Logit;
                logit = logit > 0 ? logit / _options.RepeatPenalty : logit * _options.RepeatPenalty;
            }
        }

        if (_options.Temperature <= 0)
            return ArgMax(c);

        // Sort descending by logit (ties: lower id first) so the truncations below are prefixes.
        int keep = n;
        if (_options.TopK > 0 && _options.TopK < n)
        {
            PartialSortDescending(c, _options.TopK);
            keep = _options.TopK;
        }
        else
        {
            c.Sort(Compare);
        }
        var kept = c[..keep];

        // Probabilities of what is kept (before temperature, as llama.cpp's top-p and min-p see them).
        Softmax(kept, 1.0f, _probs);
        if (_options.TopP < 1.0f)
        {
            float cumulative = 0;
            int cut = keep;
            for (int i = 0; i < keep; i++)
            {
                cumulative += _probs[i];
                if (cumulative >= _options.TopP) { cut = i + 1; break; }
            }
            keep = cut;
        }
        if (_options.MinP > 0)
        {
            float threshold = _probs[0] * _options.MinP;
            int cut = 1;
            while (cut < keep && _probs[cut] >= threshold) cut++;
            keep = cut;
        }

        kept = c[..keep];
        Softmax(kept, _options.Temperature, _probs);
        float r = NextFloat();
        float acc = 0;
        for (int i = 0; i < keep; i++)
        {
            acc += _probs[i];
            if (r < acc) return kept[i].Id;
        }
        return kept[keep - 1].Id;
    }

    private static int Compare((float Logit, int Id) a, (float Logit, int Id) b) =>
        a.Logit != b.Logit ? b.Logit.CompareTo(a.Logit) : a.Id.CompareTo(b.Id);

    private static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    private static int ArgMax(ReadOnlySpan<(float Logit, int Id)> c)
    {
        int best = 0;
        for (int i = 1; i < c.Length; i++)
            if (c[i].Logit > c[best].Logit) best = i;
        return c[best].Id;
    }

    /// <summary>Moves the k largest to the front, sorted descending (selection by repeated max: k is small).</summary>
    private static void PartialSortDescending(Span<(float Logit, int Id)> c, int k)
    {
        for (int i = 0; i < k; i++)
        {
            int best = i;
            for (int j = i + 1; j < c.Length; j++)
                if (Compare(c[j], c[best]) < 0) best = j;
            (c[i], c[best]) = (c[best], c[i]);
        }
    }

    private static void Softmax(ReadOnlySpan<(float Logit, int Id)> c, float temperature, Span<float> probs)
    {
        float max = c[0].Logit;
        float sum = 0;
        for (int i = 0; i < c.Length; i++)
        {
            probs[i] = MathF.Exp((c[i].Logit - max) / temperature);
            sum += probs[i];
        }
        for (int i = 0; i < c.Length; i++) probs[i] /= sum;
    }

    /// <summary>xorshift64*: a uniform float in [0, 1).</summary>
    private float NextFloat()
    {
        _rng ^= _rng >> 12;
        _rng ^= _rng << 25;
        _rng ^= _rng >> 27;
        return ((_rng * 0x2545F4914F6CDD1DUL) >> 40) / 16777216.0f;
    }
}
