namespace ClockLM.Generation;

/// <summary>
/// Prompt lookup (n-gram drafting, no second model): the last g tokens of the sequence, for g from the n-gram size down
/// to 1, are looked for earlier in it; at the latest earlier occurrence of the longest one found, the tokens that came
/// next are the draft. Text that repeats its context — a quoted passage, code being edited, a list continued, a greedy
/// loop — is drafted exactly. When the occurrence is so recent that its continuation runs into the end of the sequence,
/// the text is taken to repeat with that period and the draft goes on through its own tokens.
/// </summary>
public sealed class PromptLookupDrafter : IDrafter
{
    private readonly int _ngram;

    /// <summary>A drafter matching n-grams of up to <paramref name="ngram"/> tokens.</summary>
    public PromptLookupDrafter(int ngram)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ngram, 1);
        _ngram = ngram;
    }

    /// <inheritdoc/>
    public int Draft(ReadOnlySpan<int> tokens, Span<int> draft)
    {
        int n = tokens.Length;
        for (int g = Math.Min(_ngram, n - 1); g >= 1; g--)
        {
            // An occurrence inside tokens[0, n-1) is followed by at least one token; the latest one is likeliest to go on
            // as the text does now.
            int at = tokens[..(n - 1)].LastIndexOf(tokens[(n - g)..]);
            if (at < 0) continue;
            // Position n + i repeats position from + i: a token of the sequence, or one drafted already (from + i >= n).
            int from = at + g;
            for (int i = 0; i < draft.Length; i++)
                draft[i] = from + i < n ? tokens[from + i] : draft[from + i - n];
            return draft.Length;
        }
        return 0;
    }
}
