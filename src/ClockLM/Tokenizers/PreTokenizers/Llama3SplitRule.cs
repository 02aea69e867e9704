namespace ClockLM.Tokenizers.PreTokenizers;

/// <summary>
/// Llama 3's split, <c>(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+</c>,
/// written out by hand the way llama.cpp runs it: contractions in any case; one leading non-letter, non-digit
/// character (not a line break) joins a word; digits in groups of three; symbols take trailing line breaks;
/// white space up to the last line break is one piece.
/// </summary>
public sealed class Llama3SplitRule : SplitRule
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
            UnicodeClass cls = text.ClassAt(pos, start, end);

            // 's 't 'm 'd 're 've 'll in either case
            if (c == '\'' && pos + 1 < end)
            {
                int next = UnicodeClasses.ToLower(text.At(pos + 1, start, end));
                if (next is 's' or 't' or 'm' or 'd')
                {
                    Emit(pos += 2);
                    continue;
                }
                if (pos + 2 < end)
                {
                    int next2 = UnicodeClasses.ToLower(text.At(pos + 2, start, end));
                    if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') || (next == 'l' && next2 == 'l'))
                    {
                        Emit(pos += 3);
                        continue;
                    }
                }
            }

            // [^\r\n\p{L}\p{N}]?\p{L}+
            if (c != '\r' && c != '\n' && (cls & UnicodeClass.Number) == 0
                && ((cls & UnicodeClass.Letter) != 0 || (text.ClassAt(pos + 1, start, end) & UnicodeClass.Letter) != 0))
            {
                pos++;
                while ((text.ClassAt(pos, start, end) & UnicodeClass.Letter) != 0)
                    pos++;
                Emit(pos);
                continue;
            }

            // \p{N}{1,3}
            if ((cls & UnicodeClass.Number) != 0)
            {
                int groupStart = pos;
                while ((text.ClassAt(pos, start, end) & UnicodeClass.Number) != 0)
                {
                    if (++pos - groupStart >= 3)
                    {
                        Emit(pos);
                        groupStart = pos;
                    }
                }
                Emit(pos);
                continue;
            }

            //  ?[^\s\p{L}\p{N}]+[\r\n]*  (llama.cpp requires the first character itself to be inside the text)
            UnicodeClass cls2 = c == ' ' ? text.ClassAt(pos + 1, start, end) : cls;
            if (Gpt2SplitRule.RunKind(cls2) == UnicodeClass.Other && cls != UnicodeClass.None)
            {
                if (c == ' ')
                    pos++;
                while (Gpt2SplitRule.RunKind(text.ClassAt(pos, start, end)) == UnicodeClass.Other)
                    pos++;
                while (text.At(pos, start, end) is '\r' or '\n')
                    pos++;
                Emit(pos);
                continue;
            }

            int spaces = 0, afterLastBreak = 0;
            while ((text.ClassAt(pos + spaces, start, end) & UnicodeClass.Whitespace) != 0)
            {
                if (text.At(pos + spaces, start, end) is '\r' or '\n')
                    afterLastBreak = pos + spaces + 1;
                spaces++;
            }

            // \s*[\r\n]+
            if (afterLastBreak > 0)
            {
                Emit(pos = afterLastBreak);
                continue;
            }

            // \s+(?!\S)
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
}
