using System.Text;
using System.Text.RegularExpressions;

namespace ClockLM.Tokenizers.PreTokenizers;

/// <summary>
/// A split by regular expression, with the semantics of llama.cpp's fallback to <c>std::regex</c>: each match is a
/// piece, and so is each stretch of text between matches.
/// <para>A pattern that uses <c>\p{N}</c>, <c>\p{L}</c> or <c>\p{P}</c> is matched against a "collapsed" copy of the
/// text in which every non-ASCII code point is one marker character for its class (so <c>\p{L}</c> becomes
/// <c>[marker A-Za-z]</c>, and symbols, marks and emoji match no class at all). Other patterns are matched against the
/// text itself, with non-ASCII white space turned into U+000B (the C++ regex's <c>\s</c> only knows ASCII).</para>
/// </summary>
public sealed class RegexSplitRule : SplitRule
{
    internal const char OtherMarker = '\u00D0';
    internal const char NumberMarker = '\u00D1';
    internal const char LetterMarker = '\u00D2';
    internal const char PunctuationMarker = '\u00D3';

    private readonly Regex _regex;
    private readonly bool _collapsed;

    /// <summary>Creates the rule from a pattern in llama.cpp's notation (ECMAScript-like; <c>$</c> means end of text).</summary>
    public RegexSplitRule(string pattern)
    {
        Pattern = pattern;
        _collapsed = pattern.Contains(@"\p{N}") || pattern.Contains(@"\p{L}") || pattern.Contains(@"\p{P}");
        _regex = new Regex(Translate(pattern, _collapsed), RegexOptions.CultureInvariant | RegexOptions.Compiled);
    }

    /// <summary>The pattern as given.</summary>
    public string Pattern { get; }

    internal override void Split(SplitText text, int start, int end, List<int> lengths)
    {
        if (_collapsed)
        {
            // One char per code point: match positions are code point positions.
            ReadOnlySpan<char> span = text.Collapsed.AsSpan(start, end - start);
            int last = 0;
            foreach (ValueMatch m in _regex.EnumerateMatches(span))
            {
                if (m.Length == 0)
                    continue;
                if (m.Index > last)
                    lengths.Add(m.Index - last);
                lengths.Add(m.Length);
                last = m.Index + m.Length;
            }
            if (last < span.Length)
                lengths.Add(span.Length - last);
        }
        else
        {
            int from = text.WideStart[start], to = text.WideStart[end];
            int[] back = text.WideToCodepoint;
            ReadOnlySpan<char> span = text.Wide.AsSpan(from, to - from);
            int last = start;
            foreach (ValueMatch m in _regex.EnumerateMatches(span))
            {
                if (m.Length == 0)
                    continue;
                int matchStart = back[from + m.Index], matchEnd = back[from + m.Index + m.Length];
                if (matchStart > last)
                    lengths.Add(matchStart - last);
                lengths.Add(matchEnd - matchStart);
                last = matchEnd;
            }
            if (last < end)
                lengths.Add(end - last);
        }
    }

    /// <summary>Rewrites the pattern for .NET: <c>$</c> becomes <c>\z</c>; in collapsed mode each class becomes its
    /// marker plus the ASCII members of the class; characters beyond U+FFFF inside a bracket class become
    /// surrogate-pair alternatives.</summary>
    private static string Translate(string pattern, bool collapsed)
    {
        var sb = new StringBuilder();
        int i = 0;
        while (i < pattern.Length)
        {
            char c = pattern[i];
            if (c == '\\' && i + 1 < pattern.Length)
            {
                if (collapsed && i + 4 < pattern.Length && pattern[i + 1] == 'p' && pattern[i + 2] == '{' && pattern[i + 4] == '}')
                {
                    sb.Append('[').Append(CollapsedClass(pattern[i + 3])).Append(']');
                    i += 5;
                    continue;
                }
                sb.Append(c).Append(pattern[i + 1]);
                i += 2;
                continue;
            }
            if (c == '$')
            {
                sb.Append(@"\z");
                i++;
                continue;
            }
            if (c == '[')
            {
                int close = ClassEnd(pattern, i);
                sb.Append(TranslateClass(pattern[(i + 1)..close], collapsed));
                i = close + 1;
                continue;
            }
            sb.Append(c);
            i++;
        }
        return sb.ToString();
    }

    private static int ClassEnd(string pattern, int open)
    {
        for (int i = open + 1; i < pattern.Length; i++)
        {
            if (pattern[i] == '\\') { i++; continue; }
            if (pattern[i] == ']' && i > open + 1) return i;
        }
        throw new ArgumentException($"pattern '{pattern}' has an unclosed '['", nameof(pattern));
    }

    private static string CollapsedClass(char category) => category switch
    {
        'N' => $@"\u{(int)NumberMarker:X4}0-9",
        'L' => $@"\u{(int)LetterMarker:X4}A-Za-z",
        'P' => $@"\u{(int)PunctuationMarker:X4}!-#%-*,-/:-;?-@\[-\]_\{{\}}",
        _ => throw new ArgumentException($"class \\p{{{category}}} is not one of N, L, P"),
    };

    /// <summary>Translates the body of a bracket class. BMP members stay a class; members beyond U+FFFF become
    /// alternatives <c>high[low-low]</c>, which match whole surrogate pairs.</summary>
    private static string TranslateClass(string body, bool collapsed)
    {
        bool negated = body.StartsWith('^');
        if (negated) body = body[1..];

        var bmp = new StringBuilder();
        var astral = new List<(int First, int Last)>();
        int i = 0;
        while (i < body.Length)
        {
            int first = ClassAtom(body, ref i, collapsed, bmp);
            if (first < 0)
                continue; // a class escape such as \s or \p{L}, already written
            int last = first;
            if (i + 1 < body.Length && body[i] == '-' && body[i + 1] != ']')
            {
                int j = i + 1;
                int end = ClassAtom(body, ref j, collapsed, bmp);
                if (end < 0)
                    throw new ArgumentException($"class [{body}] has a range ending in a class escape");
                last = end;
                i = j;
            }
            if (first > 0xFFFF || last > 0xFFFF)
            {
                if (first <= 0xFFFF)
                    throw new ArgumentException($"class range U+{first:X4}-U+{last:X4} spans the BMP boundary");
                astral.Add((first, last));
            }
            else
            {
                bmp.Append(Escape(first));
                if (last != first)
                    bmp.Append('-').Append(Escape(last));
            }
        }

        string bmpClass = $"[{(negated ? "^" : "")}{bmp}]";
        if (astral.Count == 0)
            return bmpClass;
        if (negated)
            throw new ArgumentException("negated classes with members beyond U+FFFF are not supported");

        var alternatives = new List<string> { bmpClass };
        foreach (var (first, last) in astral)
        {
            for (int cp = first; cp <= last;)
            {
                int high = 0xD800 + ((cp - 0x10000) >> 10);
                int blockLast = Math.Min(last, 0x10000 + ((high - 0xD800 + 1) << 10) - 1);
                int lowFirst = 0xDC00 + ((cp - 0x10000) & 0x3FF), lowLast = 0xDC00 + ((blockLast - 0x10000) & 0x3FF);
                alternatives.Add($@"\u{high:X4}[\u{lowFirst:X4}-\u{lowLast:X4}]");
                cp = blockLast + 1;
            }
        }
        return "(?:" + string.Join('|', alternatives) + ")";
    }

    /// <summary>Reads one member of a bracket class at <paramref name="i"/>: returns its code point, or -1 after
    /// writing a class escape (<c>\s</c>, <c>\d</c>, <c>\w</c>, or a collapsed <c>\p{..}</c>) to <paramref name="bmp"/>.</summary>
    private static int ClassAtom(string body, ref int i, bool collapsed, StringBuilder bmp)
    {
        if (body[i] == '\\' && i + 1 < body.Length)
        {
            char e = body[i + 1];
            if (collapsed && e == 'p' && i + 4 < body.Length && body[i + 2] == '{' && body[i + 4] == '}')
            {
                bmp.Append(CollapsedClass(body[i + 3]));
                i += 5;
                return -1;
            }
            i += 2;
            switch (e)
            {
                case 's' or 'S' or 'd' or 'D' or 'w' or 'W':
                    bmp.Append('\\').Append(e);
                    return -1;
                case 'r': return '\r';
                case 'n': return '\n';
                case 't': return '\t';
                case 'f': return '\f';
                case 'v': return '\v';
                default: return e; // an escaped literal such as \[ \] \\ \- \^
            }
        }
        Rune.DecodeFromUtf16(body.AsSpan(i), out Rune rune, out int used);
        i += used;
        return rune.Value;
    }

    private static string Escape(int c) => $@"\u{c:X4}";
}
