using ClockLM.Models;

namespace ClockLM.Generation;

/// <summary>
/// Speculative decoding of one sequence, exact. It stands in for <see cref="Transformer.Forward"/>: asked for the
/// logits after token t at position p, it first lets the drafter guess the tokens d1..dk that follow, and runs
/// t, d1, …, dk at positions p..p+k in one pass over the weights (the prompt-chunk path,
/// <see cref="Transformer.Evaluate(ReadOnlySpan{int}, int, Span{float})"/>, every row with its logits). The caller samples
/// from row 0 as always; when the token it chose is d1, the logits after d1 are row 1, already computed, and so on. At
/// the first token that differs from the draft the later rows are dropped — the KV cache is rolled back to that point —
/// and the next call runs a new pass from there. How many tokens a pass drafts follows how many were accepted
/// (<see cref="DraftLength"/>).
/// </summary>
/// <remarks>
/// <para>The sampler never sees a draft: every token is chosen, as without drafts, from the logits after the tokens
/// really chosen before it, and each row's logits are bit-identical to running its token alone. So greedy output is the
/// same token for token, and with sampling, the same seed gives the same tokens. This is the accept/reject rule of
/// Leviathan et al. (2023) for a draft that proposes one token (a point mass q): the draft d is accepted with
/// probability p(d) (the sampler chose it), and on rejection the token comes from p restricted to the others,
/// renormalised, which is the rule's max(0, p − q) normalised — so every token is distributed exactly as the model's.</para>
/// <para>A pass of k + 1 rows reads the weights once, like one token does; when decoding is bound by memory bandwidth it
/// costs little more than a token alone, and each accepted draft saves a whole pass.</para>
/// </remarks>
public sealed class SpeculativeDecoder
{
    private readonly Transformer _target;
    private readonly IDrafter _drafter;
    private readonly SpeculativeOptions _options;
    private readonly List<int> _tokens = []; // the token at each position run so far (drafts not included)
    private readonly int[] _rows;            // the last pass's tokens: the token asked for, then its drafts
    private float[] _logits = [];            // the last pass's logits (rows, vocab)
    private int _rowCount, _passStart, _next; // rows of the last pass, its first position, and the row served next
    private long _passes, _drafted, _accepted;
    private DraftLength _length;             // drafts per pass, following acceptance

    /// <summary>A decoder for <paramref name="target"/>'s sequence, drafting with <paramref name="drafter"/>.</summary>
    public SpeculativeDecoder(Transformer target, IDrafter drafter, SpeculativeOptions options)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(drafter);
        ArgumentNullException.ThrowIfNull(options);
        if (options.DraftMax < 1) throw new ArgumentOutOfRangeException(nameof(options), options.DraftMax, "draft-max must be 1 or more");
        _target = target;
        _drafter = drafter;
        _options = options;
        _rows = new int[options.DraftMax + 1];
    }

    /// <summary>The sequence's processor.</summary>
    public Transformer Target => _target;

    /// <summary>Passes, drafted and accepted tokens so far.</summary>
    public SpeculativeStats Stats => new(_passes, _drafted, _accepted);

    /// <summary>Evaluates <paramref name="tokens"/> from <paramref name="startPos"/> without drafts (a prompt) and returns
    /// the last one's logits, as <see cref="Transformer.Evaluate(ReadOnlySpan{int}, int)"/> does.</summary>
    public ReadOnlySpan<float> Evaluate(ReadOnlySpan<int> tokens, int startPos)
    {
        Place(startPos);
        var logits = _target.Evaluate(tokens, startPos);
        foreach (int id in tokens) _tokens.Add(id);
        _rowCount = 0;
        return logits;
    }

    /// <summary>
    /// The logits after <paramref name="token"/> at <paramref name="pos"/> (vocab; valid until the next call), as
    /// <see cref="Transformer.Forward"/> gives them. From the last pass when it ran this token at this position after
    /// the same tokens; otherwise from a new pass with up to <paramref name="maxDraft"/> drafted tokens after it
    /// (fewer near the end of the context; none when fewer than <see cref="SpeculativeOptions.DraftMin"/> are drafted).
    /// </summary>
    public ReadOnlySpan<float> Forward(int token, int pos, int maxDraft = int.MaxValue)
    {
        int vocab = _target.Config.VocabSize;
        if (_next < _rowCount && pos == _passStart + _next && token == _rows[_next] && pos == _tokens.Count)
        {
            // The draft was right: this row ran in the last pass, after the tokens really chosen.
            _tokens.Add(token);
            _accepted++;
            return _logits.AsSpan(_next++ * vocab, vocab);
        }

        _target.CheckTokenAndPosition(token, pos);
        if (_rowCount > 1) _length.Record(_rowCount - 1, _next - 1);
        Place(pos);
        _tokens.Add(token);
        int k = Math.Min(Math.Min(_length.Next(_options.DraftMin, _options.DraftMax), maxDraft), _target.ContextLength - 1 - pos);
        if (k > 0) k = _drafter.Draft(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_tokens), _rows.AsSpan(1, k));
        if (k < Math.Max(1, _options.DraftMin))
        {
            _rowCount = 0;
            return _target.Forward(token, pos);
        }

        _rows[0] = token;
        if (_logits.Length < (k + 1) * vocab) _logits = new float[(_rows.Length) * vocab];
        _target.Evaluate(_rows.AsSpan(0, k + 1), pos, _logits.AsSpan(0, (k + 1) * vocab));
        (_rowCount, _passStart, _next) = (k + 1, pos, 1);
        _passes++;
        _drafted += k;
        return _logits.AsSpan(0, vocab);
    }

    /// <summary>
    /// Context shift (<see cref="Transformer.ShiftContext"/>): keeps positions [0, <paramref name="keep"/>), drops the next
    /// <paramref name="discard"/> and moves the later ones down, in the KV cache and in the tokens drafts are made from.
    /// The rows of the last pass are dropped (their positions have moved).
    /// </summary>
    public void ShiftContext(int keep, int discard)
    {
        _target.Cache.Truncate(_tokens.Count);
        _target.ShiftContext(keep, discard);
        _tokens.RemoveRange(keep, discard);
        _rowCount = 0;
    }

    /// <summary>The next token runs at <paramref name="pos"/>: the sequence keeps its tokens before it, and the KV cache
    /// is rolled back to them (<see cref="KvCache.Truncate"/>), dropping the rows of rejected drafts.</summary>
    private void Place(int pos)
    {
        if ((uint)pos > (uint)_tokens.Count)
            throw new ArgumentOutOfRangeException(nameof(pos), pos, $"the sequence holds {_tokens.Count} tokens; the next runs at {_tokens.Count} or before");
        _tokens.RemoveRange(pos, _tokens.Count - pos);
        _target.Cache.Truncate(pos);
    }
}
