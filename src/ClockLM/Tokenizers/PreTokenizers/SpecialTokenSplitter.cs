namespace ClockLM.Tokenizers.PreTokenizers;

/// <summary>A piece of input text: either raw text <c>[Start, Start+Length)</c> (<see cref="TokenId"/> = -1) or a
/// special token written in the text.</summary>
public readonly record struct TextFragment(int Start, int Length, int TokenId)
{
    /// <summary>Whether this fragment is raw text still to be tokenized.</summary>
    public bool IsText => TokenId < 0;
}

/// <summary>
/// Finds special tokens written in text before ordinary tokenization, as llama.cpp does: tokens are tried longest
/// first, each one cutting every remaining text fragment at all its occurrences. User-defined tokens are always
/// matched; control and unknown tokens only when asked to parse special tokens.
/// </summary>
public sealed class SpecialTokenSplitter
{
    private readonly Entry[] _entries;

    private readonly record struct Entry(string Text, int Id, bool NeedsParseSpecial, bool StripLeft, bool StripRight);

    /// <summary>Collects the vocabulary's control, user-defined and unknown entries.
    /// <paramref name="stripLeft"/>/<paramref name="stripRight"/> name tokens that swallow the white space before/after them.</summary>
    public SpecialTokenSplitter(IReadOnlyList<string> pieces, IReadOnlyList<TokenKind> kinds,
        ISet<int>? stripLeft = null, ISet<int>? stripRight = null)
    {
        var entries = new List<Entry>();
        for (int id = 0; id < pieces.Count; id++)
        {
            TokenKind kind = kinds[id];
            if (kind is TokenKind.Control or TokenKind.UserDefined or TokenKind.Unknown && pieces[id].Length > 0)
                entries.Add(new Entry(pieces[id], id, kind != TokenKind.UserDefined,
                    stripLeft?.Contains(id) == true, stripRight?.Contains(id) == true));
        }
        // Longest first (UTF-8 length, as llama.cpp compares byte strings); ties keep id order.
        _entries = [.. entries.OrderByDescending(e => System.Text.Encoding.UTF8.GetByteCount(e.Text))];
    }

    /// <summary>Number of special entries.</summary>
    public int Count => _entries.Length;

    /// <summary>Cuts <paramref name="text"/> into raw-text and special-token fragments, in order.</summary>
    public List<TextFragment> Split(string text, bool parseSpecial)
    {
        var fragments = new List<TextFragment>();
        if (text.Length == 0)
            return fragments;
        fragments.Add(new TextFragment(0, text.Length, -1));

        // On long texts, skip entries whose first character never occurs before searching for them.
        bool[]? present = null;
        if (text.Length > 256 && _entries.Length > 16)
        {
            present = new bool[char.MaxValue + 1];
            foreach (char c in text)
                present[c] = true;
        }

        foreach (Entry entry in _entries)
        {
            if (entry.NeedsParseSpecial && !parseSpecial)
                continue;
            if (present != null && !present[entry.Text[0]])
                continue;
            if (!text.Contains(entry.Text, StringComparison.Ordinal))
                continue;

            var next = new List<TextFragment>(fragments.Count + 2);
            foreach (TextFragment fragment in fragments)
            {
                if (!fragment.IsText)
                {
                    next.Add(fragment);
                    continue;
                }
                int start = fragment.Start, end = fragment.Start + fragment.Length;
                while (start < end)
                {
                    int match = text.IndexOf(entry.Text, start, end - start, StringComparison.Ordinal);
                    if (match < 0)
                        break;
                    int leftEnd = match;
                    if (entry.StripLeft)
                        while (leftEnd > start && IsCSpace(text[leftEnd - 1]))
                            leftEnd--;
                    if (leftEnd > start)
                        next.Add(new TextFragment(start, leftEnd - start, -1));
                    next.Add(new TextFragment(match, entry.Text.Length, entry.Id));
                    start = match + entry.Text.Length;
                    if (entry.StripRight)
                        while (start < end && IsCSpace(text[start]))
                            start++;
                }
                if (start < end)
                    next.Add(new TextFragment(start, end - start, -1));
            }
            fragments = next;
        }
        return fragments;
    }

    // C's isspace in the "C" locale.
    private static bool IsCSpace(char c) => c is ' ' or '\t' or '\n' or '\v' or '\f' or '\r';
}
