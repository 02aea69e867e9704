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
    private ulong[]? _sortKeys;
    private (float Logit, int Id)[]? _sorted;
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
            bool penalty = _options.RepeatPenalty != 1.0f && _options.RepeatLastN > 0;
            id = _options.Temperature <= 0 && !penalty
                ? ArgMax(logits, _constraint.AllowedTokens())
                : SampleChain(logits, recent, penalty, _constraint.AllowedTokens());
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

    /// <summary>The whole chain: penalty, truncations, temperature, draw; over the tokens whose bit is set in
    /// <paramref name="allowed"/> when it is not empty (the same result as the others' logits at -infinity).</summary>
    private int SampleChain(ReadOnlySpan<float> logits, ReadOnlySpan<int> recent, bool penalty, ReadOnlySpan<ulong> allowed = default)
    {
        int n = 0;
        if (allowed.IsEmpty)
        {
            for (int i = 0; i < logits.Length; i++) _candidates[i] = (logits[i], i);
            n = logits.Length;
        }
        else
        {
            // In id order, so a token's candidate can be found by binary search.
            for (int w = 0; w < allowed.Length; w++)
                for (ulong bits = allowed[w]; bits != 0; bits &= bits - 1)
                {
                    int id = w * 64 + System.Numerics.BitOperations.TrailingZeroCount(bits);
                    if (id < logits.Length) _candidates[n++] = (logits[id], id);
                }
        }
        var c = _candidates.AsSpan(0, n);

        if (penalty)
        {
            var window = recent.Length > _options.RepeatLastN ? recent[^_options.RepeatLastN..] : recent;
            for (int i = 0; i < window.Length; i++)
            {
                int id = window[i];
                // Each distinct token is penalised once, however often it occurs.
                if ((uint)id >= (uint)logits.Length || window[..i].Contains(id)) continue;
                int at = allowed.IsEmpty ? id : FindId(c, id);
                if (at < 0) continue;
                ref float logit = ref c[at].Logit;
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
            SortDescending(c);
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

    /// <summary>The first id of the largest logit among the tokens whose bit is set (the chain's greedy choice over them).</summary>
    private static int ArgMax(ReadOnlySpan<float> logits, ReadOnlySpan<ulong> allowed)
    {
        int best = -1;
        float bestLogit = float.NegativeInfinity;
        for (int w = 0; w < allowed.Length; w++)
            for (ulong bits = allowed[w]; bits != 0; bits &= bits - 1)
            {
                int id = w * 64 + System.Numerics.BitOperations.TrailingZeroCount(bits);
                if (id >= logits.Length) break;
                if (best < 0 || logits[id] > bestLogit) (best, bestLogit) = (id, logits[id]);
            }
        return best;
    }

    private static int ArgMax(ReadOnlySpan<(float Logit, int Id)> c)
    {
        int best = 0;
        for (int i = 1; i < c.Length; i++)
            if (c[i].Logit > c[best].Logit) best = i;
        return c[best].Id;
    }

    /// <summary>
    /// Sorts the candidates in <see cref="Compare"/> order (logit descending, then id ascending) by sorting 64-bit keys:
    /// the logit's bits mapped so that unsigned order is descending float order, above the candidate's index (candidates
    /// arrive in id order). A primitive sort of longs runs several times faster than one through a comparison delegate.
    /// </summary>
    internal void SortDescending(Span<(float Logit, int Id)> c)
    {
        var keys = (_sortKeys ??= new ulong[_candidates.Length]).AsSpan(0, c.Length);
        for (int i = 0; i < c.Length; i++)
        {
            uint bits = BitConverter.SingleToUInt32Bits(c[i].Logit + 0f); // + 0 turns -0 into +0, which compare equal
            uint ascending = (bits & 0x8000_0000u) != 0 ? ~bits : bits | 0x8000_0000u;
            keys[i] = ((ulong)~ascending << 32) | (uint)i;
        }
        keys.Sort();
        var sorted = (_sorted ??= new (float, int)[_candidates.Length]).AsSpan(0, c.Length);
        for (int i = 0; i < keys.Length; i++) sorted[i] = c[(int)(uint)keys[i]];
        sorted.CopyTo(c);
    }

    /// <summary>The index of the candidate of token <paramref name="id"/> in candidates sorted by id, or -1.</summary>
    private static int FindId(ReadOnlySpan<(float Logit, int Id)> c, int id)
    {
        int lo = 0, hi = c.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (c[mid].Id == id) return mid;
            if (c[mid].Id < id) lo = mid + 1;
            else hi = mid - 1;
        }
        return -1;
    }

    /// <summary>
    /// Moves the k first in <see cref="Compare"/> order to the front, sorted. A heap of the k best so far keeps its worst
    /// at the root; each other candidate costs one comparison with it, so the whole is about one pass over the logits.
    /// </summary>
    internal static void PartialSortDescending(Span<(float Logit, int Id)> c, int k)
    {
        for (int i = k / 2 - 1; i >= 0; i--) SiftDown(c[..k], i);
        for (int j = k; j < c.Length; j++)
        {
            if (Compare(c[j], c[0]) >= 0) continue; // not better than the worst kept
            (c[0], c[j]) = (c[j], c[0]);
            SiftDown(c[..k], 0);
        }
        c[..k].Sort(Compare);
    }

    /// <summary>Restores the heap below <paramref name="i"/>: every parent comes after its children in Compare order.</summary>
    private static void SiftDown(Span<(float Logit, int Id)> heap, int i)
    {
        while (true)
        {
            int worst = i, left = 2 * i + 1, right = left + 1;
            if (left < heap.Length && Compare(heap[left], heap[worst]) > 0) worst = left;
            if (right < heap.Length && Compare(heap[right], heap[worst]) > 0) worst = right;
            if (worst == i) return;
            (heap[i], heap[worst]) = (heap[worst], heap[i]);
            i = worst;
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
