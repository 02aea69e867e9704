namespace ClockLM.Tokenizers.PreTokenizers;

/// <summary>
/// GPT-2's split, <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>, written out by hand
/// the way llama.cpp runs it (its result is what ClockLM must reproduce, quirks included):
/// contractions are lower-case only; a run of white space followed by more text leaves its last character to
/// start the next piece; anything else stands alone.
/// </summary>
public sealed class Gpt2SplitRule : SplitRule
{
    internal override void Split(SplitText text, int start, int end, List<int> lengths)
    {
        int pieceStart = start;
        void Emit(int until)
        {
            if (until > pieceStart)
                lengths.Add(until - pieceStart);
            pieceStart = until;
        }

        int pos = start;
        while (pos < end)
        {
            int c = text.At(pos, start, end);

            // 's 't 'm 'd 're 've 'll
            if (c == '\'' && pos + 1 < end)
            {
                int next = text.At(pos + 1, start, end);
                if (next is 's' or 't' or 'm' or 'd')
                {
                    Emit(pos += 2);
                    continue;
                }
                if (pos + 2 < end)
                {
                    int next2 = text.At(pos + 2, start, end);
                    if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') || (next == 'l' && next2 == 'l'))
                    {
                        Emit(pos += 3);
                        continue;
                    }
                }
            }

            // An optional leading space joins the letters, digits or symbols that follow it.
            UnicodeClass cls = c == ' ' ? text.ClassAt(pos + 1, start, end) : text.ClassAt(pos, start, end);
            if (RunKind(cls) is UnicodeClass kind)
            {
                if (c == ' ')
                    pos++;
                while (RunKind(text.ClassAt(pos, start, end)) == kind)
                    pos++;
                Emit(pos);
                continue;
            }

            int spaces = 0;
            while ((text.ClassAt(pos + spaces, start, end) & UnicodeClass.Whitespace) != 0)
                spaces++;

            // \s+(?!\S): the last white space goes with the text after it.
            if (spaces > 1 && pos + spaces < end)
            {
                Emit(pos += spaces - 1);
                continue;
            }
            if (spaces > 0)
            {
                Emit(pos += spaces);
                continue;
            }

            Emit(++pos);
        }
    }

    /// <summary>Which run a code point belongs to: letters (<c>\p{L}+</c>), digits (<c>\p{N}+</c>),
    /// anything else but white space (<c>[^\s\p{L}\p{N}]+</c>, reported as <see cref="UnicodeClass.Other"/>),
    /// or none (white space, or outside the text).</summary>
    internal static UnicodeClass? RunKind(UnicodeClass cls) =>
        (cls & UnicodeClass.Letter) != 0 ? UnicodeClass.Letter
        : (cls & UnicodeClass.Number) != 0 ? UnicodeClass.Number
        : cls != UnicodeClass.None && (cls & UnicodeClass.Whitespace) == 0 ? UnicodeClass.Other
        : null;
}
